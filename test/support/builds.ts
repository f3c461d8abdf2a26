import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Builds } from '../../lambda/domain/builds';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { type Artifact, pushArtifact } from '../../lambda/oci/artifact';
import type { RegistryClient } from '../../lambda/oci/client';
import { packageHelmChart } from '../../lambda/packaging/helm';
import { packageTerraformModule } from '../../lambda/packaging/terraform';

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

/** A source chart `site` 0.1.0 with one template, written to `dir` and packaged as the build agent does. */
export async function helmChartArtifact(dir: string): Promise<Artifact> {
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: site\nversion: 0.1.0\n');
  writeFileSync(join(dir, 'templates', 'deploy.yaml'), 'kind: Deployment\n');
  const chart = await packageHelmChart(dir);
  return {
    config: { mediaType: chart.configMediaType, bytes: chart.configBytes },
    layers: [{ mediaType: chart.layerMediaType, bytes: chart.layerBytes }],
  };
}

/** A Terraform module of one `main.tf`, written to `dir` and packaged as the build agent does. */
export async function terraformModuleArtifact(dir: string, mainTf: string): Promise<Artifact> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.tf'), mainTf);
  const module = await packageTerraformModule(dir);
  return {
    artifactType: module.artifactType,
    config: { mediaType: module.configMediaType, bytes: module.configBytes },
    layers: [{ mediaType: module.layerMediaType, bytes: module.layerBytes }],
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
