/**
 * Artifacts as OCI image manifests: a config blob and layers, pushed and tagged. The manifest is
 * deterministic JSON (fixed key order, sorted annotations, no timestamps), so the same content
 * always has the same digest.
 */

import type { RegistryClient } from './client';
import { sha256 } from './client';
import { OCI_IMAGE_MANIFEST } from './media-types';

export interface ArtifactBlob {
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export interface ArtifactLayer extends ArtifactBlob {
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface Artifact {
  /** The manifest's `artifactType` (OCI 1.1); left out when not given, as Helm does. */
  readonly artifactType?: string;
  readonly config: ArtifactBlob;
  readonly layers: readonly ArtifactLayer[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A manifest in a registry: what `repository@digest` names. */
export interface ManifestDescription {
  readonly digest: string;
  /** Bytes of the manifest itself. */
  readonly size: number;
  readonly mediaType: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The manifest bytes for an artifact: the same artifact always gives the same bytes. */
export function artifactManifest(artifact: Artifact): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_IMAGE_MANIFEST,
    ...(artifact.artifactType !== undefined && { artifactType: artifact.artifactType }),
    config: describeBlob(artifact.config),
    layers: artifact.layers.map((layer) => describeBlob(layer, layer.annotations)),
    ...(hasEntries(artifact.annotations) && { annotations: sorted(artifact.annotations) }),
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** Pushes the config and layers (skipping those the repository holds), then the manifest under `tag`. */
export async function pushArtifact(
  client: RegistryClient,
  repository: string,
  tag: string,
  artifact: Artifact,
): Promise<ManifestDescription> {
  for (const blob of [artifact.config, ...artifact.layers]) {
    await client.pushBlob(repository, sha256(blob.bytes), blob.bytes.length, blob.bytes);
  }
  const bytes = artifactManifest(artifact);
  const digest = await client.putManifest(repository, tag, bytes, OCI_IMAGE_MANIFEST);
  return { digest, size: bytes.length, mediaType: OCI_IMAGE_MANIFEST };
}

/** The digest, size and media type of the manifest a tag or digest names. */
export async function describeManifest(
  client: RegistryClient,
  repository: string,
  reference: string,
): Promise<ManifestDescription> {
  const manifest = await client.getManifest(repository, reference);
  return { digest: manifest.digest, size: manifest.bytes.length, mediaType: manifest.mediaType };
}

function describeBlob(blob: ArtifactBlob, annotations?: Readonly<Record<string, string>>): Descriptor {
  return {
    mediaType: blob.mediaType,
    digest: sha256(blob.bytes),
    size: blob.bytes.length,
    ...(hasEntries(annotations) && { annotations: sorted(annotations) }),
  };
}

function hasEntries(record: Readonly<Record<string, string>> | undefined): record is Record<string, string> {
  return record !== undefined && Object.keys(record).length > 0;
}

function sorted(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
