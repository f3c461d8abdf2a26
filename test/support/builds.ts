import type { Builds } from '../../lambda/domain/builds';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { type Artifact, pushArtifact } from '../../lambda/oci/artifact';
import type { RegistryClient } from '../../lambda/oci/client';

/** A small image artifact: an OCI config and one layer whose bytes name it. */
export function imageArtifact(label: string): Artifact {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, label }),
  );
  return {
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', bytes: config },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', bytes: Buffer.from(`layer of ${label}`) },
    ],
  };
}

/**
 * Records a succeeded build of a component, as the build workflow would: its artifact pushed to the
 * tenant registry under `ferry-acme/<app>/<component>` (tagged with the build id), or, for a
 * prebuilt chart, just recorded. Answers the build id.
 */
export async function succeededBuild(
  builds: Builds,
  tenant: RegistryClient,
  app: { id: string; name: string },
  component: string,
  spec: ComponentSpec,
  artifact: Artifact | { chart: { repo: string; name: string; version: string } },
): Promise<string> {
  const build = (
    await builds.request({ appId: app.id, appName: app.name, component, componentVersion: 1, spec }, 't')
  ).value;
  await builds.markRunning(build.id, 't');
  if ('chart' in artifact) {
    await builds.recordSuccess(
      build.id,
      { artifact: { uri: artifact.chart.repo, chart: artifact.chart } },
      't',
    );
    return build.id;
  }
  const repository = `ferry-acme/${app.name}/${component}`;
  const pushed = await pushArtifact(tenant, repository, build.id, artifact);
  const host = tenant.registry;
  await builds.recordSuccess(
    build.id,
    {
      artifact: {
        uri: `${host}/${repository}@${pushed.digest}`,
        registry: host,
        repository,
        tag: build.id,
        digest: pushed.digest,
        size: pushed.size,
        mediaType: pushed.mediaType,
      },
    },
    't',
  );
  return build.id;
}
