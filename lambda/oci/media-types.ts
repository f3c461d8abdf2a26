/**
 * The media types Ferry reads and writes in registries: OCI and Docker manifests, Helm charts as
 * Helm pushes them, and Ferry's own Terraform module artifact.
 */

export const OCI_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_IMAGE_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_IMAGE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_IMAGE_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** The config of an artifact that has no config of its own (OCI 1.1): the two bytes `{}`. */
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
/** Windows base layers: served from the vendor's URLs, never pushed to another registry. */
export const DOCKER_FOREIGN_LAYER_GZIP = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

export const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
export const HELM_CHART_LAYER = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

export const TERRAFORM_MODULE_ARTIFACT = 'application/vnd.ferry.terraform.module.v1';
export const TERRAFORM_CONFIG = 'application/vnd.ferry.terraform.config.v1+json';
export const TERRAFORM_MODULE_LAYER = 'application/vnd.ferry.terraform.module.v1.tar+gzip';

/** Manifests that name a config and layers. */
export const IMAGE_MANIFEST_TYPES: readonly string[] = [OCI_IMAGE_MANIFEST, DOCKER_MANIFEST];
/** Manifests that name other manifests (one per platform). */
export const INDEX_TYPES: readonly string[] = [OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST];
/** Every manifest kind Ferry accepts, the Accept list of a manifest fetch. */
export const MANIFEST_TYPES: readonly string[] = [...IMAGE_MANIFEST_TYPES, ...INDEX_TYPES];

export function isIndex(mediaType: string): boolean {
  return INDEX_TYPES.includes(mediaType);
}

export function isImageManifest(mediaType: string): boolean {
  return IMAGE_MANIFEST_TYPES.includes(mediaType);
}

/** Layers the registry must not be asked to store (they carry `urls` to fetch them from instead). */
export function isNonDistributable(mediaType: string): boolean {
  return mediaType === DOCKER_FOREIGN_LAYER_GZIP || mediaType.includes('.nondistributable.');
}
