import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeManifest, pushArtifact } from '../../lambda/oci/artifact';
import { RegistryClient, RegistryError } from '../../lambda/oci/client';
import { copyImage } from '../../lambda/oci/copy';
import {
  DOCKER_CONFIG,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  HELM_CHART_LAYER,
  HELM_CONFIG,
  OCI_IMAGE_CONFIG,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_LAYER_GZIP,
  OCI_IMAGE_MANIFEST,
  TERRAFORM_CONFIG,
  TERRAFORM_MODULE_ARTIFACT,
  TERRAFORM_MODULE_LAYER,
} from '../../lambda/oci/media-types';
import { packageHelmChart } from '../../lambda/packaging/helm';
import { readTarGz } from '../../lambda/packaging/tar';
import { packageTerraformModule } from '../../lambda/packaging/terraform';
import { type LocalRegistry, startRegistry } from '../../local/registry';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

interface Pushed {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly blobs: readonly string[];
}

/** Pushes a manifest of `kind` with a config and two random layers (one over a megabyte) by digest. */
async function pushPlatformImage(
  client: RegistryClient,
  repository: string,
  platform: { architecture: string; os: string },
  kind: 'oci' | 'docker',
): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] } }));
  const layers = [randomBytes(1_500_000), randomBytes(2048)];
  for (const blob of [config, ...layers]) await client.pushBlob(repository, sha256(blob), blob.length, blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: kind === 'oci' ? OCI_IMAGE_MANIFEST : DOCKER_MANIFEST,
      config: {
        mediaType: kind === 'oci' ? OCI_IMAGE_CONFIG : DOCKER_CONFIG,
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((layer) => ({
        mediaType: kind === 'oci' ? OCI_IMAGE_LAYER_GZIP : DOCKER_LAYER_GZIP,
        digest: sha256(layer),
        size: layer.length,
      })),
    }),
  );
  const mediaType = kind === 'oci' ? OCI_IMAGE_MANIFEST : DOCKER_MANIFEST;
  const digest = await client.putManifest(repository, sha256(manifest), manifest, mediaType);
  return { digest, size: manifest.length, mediaType, blobs: [config, ...layers].map(sha256) };
}

/** Pushes a two-platform index (OCI) or manifest list (Docker) under `tag`. */
async function pushMultiPlatform(
  client: RegistryClient,
  repository: string,
  tag: string,
  kind: 'oci' | 'docker',
) {
  const platforms = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux' },
  ];
  const children: Pushed[] = [];
  for (const platform of platforms)
    children.push(await pushPlatformImage(client, repository, platform, kind));
  const mediaType = kind === 'oci' ? OCI_IMAGE_INDEX : DOCKER_MANIFEST_LIST;
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((child, i) => ({
        mediaType: child.mediaType,
        digest: child.digest,
        size: child.size,
        platform: platforms[i],
      })),
    }),
  );
  const digest = await client.putManifest(repository, tag, index, mediaType);
  return { digest, bytes: index, mediaType, children };
}

describe('OCI artifacts and copies on real registries', () => {
  let source: LocalRegistry;
  let dest: LocalRegistry;
  let sourceClient: RegistryClient;
  let destClient: RegistryClient;
  const work = mkdtempSync(join(tmpdir(), 'ferry-oci-'));
  const chartDir = join(work, 'chart');

  beforeAll(async () => {
    [source, dest] = await Promise.all([startRegistry(), startRegistry()]);
    sourceClient = new RegistryClient({ registry: source.host, insecure: true });
    destClient = new RegistryClient({ registry: dest.host, insecure: true });
    mkdirSync(join(chartDir, 'templates'), { recursive: true });
    writeFileSync(
      join(chartDir, 'Chart.yaml'),
      'apiVersion: v2\nname: shop\nversion: 0.1.0\ndescription: Shop\n',
    );
    writeFileSync(join(chartDir, 'values.yaml'), 'replicas: 2\n');
    writeFileSync(join(chartDir, 'templates', 'deployment.yaml'), 'kind: Deployment\n');
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), dest?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  it('pushes a Helm chart artifact and reads it back', async () => {
    const chart = await packageHelmChart(chartDir);

    const pushed = await pushArtifact(sourceClient, 'charts/shop', '0.1.0', {
      config: { mediaType: chart.configMediaType, bytes: chart.configBytes },
      layers: [{ mediaType: chart.layerMediaType, bytes: chart.layerBytes }],
      annotations: chart.annotations,
    });

    const manifest = await sourceClient.getManifest('charts/shop', '0.1.0');
    expect(manifest.digest).toBe(pushed.digest);
    expect(manifest.mediaType).toBe(OCI_IMAGE_MANIFEST);
    expect(pushed).toEqual({
      digest: pushed.digest,
      size: manifest.bytes.length,
      mediaType: OCI_IMAGE_MANIFEST,
    });
    const parsed = JSON.parse(manifest.bytes.toString());
    expect(parsed).toMatchObject({
      schemaVersion: 2,
      mediaType: OCI_IMAGE_MANIFEST,
      config: { mediaType: HELM_CONFIG },
      layers: [{ mediaType: HELM_CHART_LAYER }],
      annotations: { 'org.opencontainers.image.title': 'shop', 'org.opencontainers.image.version': '0.1.0' },
    });
    expect(parsed.artifactType).toBeUndefined();
    const config = JSON.parse(
      (await readAll(await sourceClient.getBlob('charts/shop', parsed.config.digest))).toString(),
    );
    expect(config).toEqual({ name: 'shop', version: '0.1.0', description: 'Shop', apiVersion: 'v2' });
    const layer = await readAll(await sourceClient.getBlob('charts/shop', parsed.layers[0].digest));
    expect((await readTarGz(layer)).map((entry) => entry.name)).toEqual([
      'shop/',
      'shop/Chart.yaml',
      'shop/templates/',
      'shop/templates/deployment.yaml',
      'shop/values.yaml',
    ]);
    await expect(describeManifest(sourceClient, 'charts/shop', pushed.digest)).resolves.toEqual(pushed);
  });

  it('gives the same digest for the same chart packaged twice from different copies', async () => {
    const copy = join(work, 'chart-copy');
    cpSync(chartDir, copy, { recursive: true, preserveTimestamps: false });
    const push = async (dir: string, tag: string) => {
      const chart = await packageHelmChart(dir);
      return pushArtifact(sourceClient, 'charts/twice', tag, {
        config: { mediaType: chart.configMediaType, bytes: chart.configBytes },
        layers: [{ mediaType: chart.layerMediaType, bytes: chart.layerBytes }],
        annotations: chart.annotations,
      });
    };

    const first = await push(chartDir, 'first');
    const second = await push(copy, 'second');

    expect(second.digest).toBe(first.digest);
  });

  it('pushes a Terraform module artifact with its artifact type, config and layer', async () => {
    const moduleDir = join(work, 'module');
    mkdirSync(moduleDir);
    writeFileSync(join(moduleDir, 'main.tf'), 'variable "region" {}\noutput "bucket" {\n  value = "b"\n}\n');
    const module = await packageTerraformModule(moduleDir);
    const artifact = {
      artifactType: module.artifactType,
      config: { mediaType: module.configMediaType, bytes: module.configBytes },
      layers: [{ mediaType: module.layerMediaType, bytes: module.layerBytes }],
    };

    const first = await pushArtifact(sourceClient, 'modules/db', 'v1', artifact);
    const again = await pushArtifact(
      sourceClient,
      'modules/db',
      'v1-again',
      await packageTerraformModule(moduleDir).then((m) => ({
        artifactType: m.artifactType,
        config: { mediaType: m.configMediaType, bytes: m.configBytes },
        layers: [{ mediaType: m.layerMediaType, bytes: m.layerBytes }],
      })),
    );

    expect(again.digest).toBe(first.digest);
    const manifest = JSON.parse((await sourceClient.getManifest('modules/db', 'v1')).bytes.toString());
    expect(manifest).toMatchObject({
      artifactType: TERRAFORM_MODULE_ARTIFACT,
      config: { mediaType: TERRAFORM_CONFIG },
      layers: [{ mediaType: TERRAFORM_MODULE_LAYER }],
    });
    const config = JSON.parse(
      (await readAll(await sourceClient.getBlob('modules/db', manifest.config.digest))).toString(),
    );
    expect(config).toEqual({
      schemaVersion: 1,
      files: ['main.tf'],
      variables: ['region'],
      outputs: ['bucket'],
    });
    const layer = await readAll(await sourceClient.getBlob('modules/db', manifest.layers[0].digest));
    expect((await readTarGz(layer)).map((entry) => [entry.name, entry.mode.toString(8)])).toEqual([
      ['main.tf', '644'],
    ]);
  });

  it('copies a single manifest to another registry byte for byte', async () => {
    const image = await pushPlatformImage(
      sourceClient,
      'apps/api',
      { architecture: 'arm64', os: 'linux' },
      'oci',
    );
    await sourceClient.putManifest(
      'apps/api',
      'v1',
      (await sourceClient.getManifest('apps/api', image.digest)).bytes,
      OCI_IMAGE_MANIFEST,
    );

    const copied = await copyImage(sourceClient, 'apps/api', 'v1', destClient, 'ferry-acme/api', 'v1');

    expect(copied).toMatchObject({ digest: image.digest, size: image.size, mediaType: OCI_IMAGE_MANIFEST });
    const original = await sourceClient.getManifest('apps/api', 'v1');
    const copy = await destClient.getManifest('ferry-acme/api', 'v1');
    expect(copy.bytes.equals(original.bytes)).toBe(true);
    for (const blob of image.blobs) {
      const [from, to] = await Promise.all([
        readAll(await sourceClient.getBlob('apps/api', blob)),
        readAll(await destClient.getBlob('ferry-acme/api', blob)),
      ]);
      expect(to.equals(from)).toBe(true);
    }
  });

  it.each(['oci', 'docker'] as const)('copies a two-platform %s index with every platform', async (kind) => {
    const index = await pushMultiPlatform(sourceClient, `apps/multi-${kind}`, 'v2', kind);

    const copied = await copyImage(
      sourceClient,
      `apps/multi-${kind}`,
      'v2',
      destClient,
      `ferry-acme/multi-${kind}`,
      'v2',
    );

    expect(copied).toMatchObject({
      digest: index.digest,
      size: index.bytes.length,
      mediaType: index.mediaType,
    });
    const copy = await destClient.getManifest(`ferry-acme/multi-${kind}`, 'v2');
    expect(copy.bytes.equals(index.bytes)).toBe(true);
    expect(copy.mediaType).toBe(index.mediaType);
    for (const child of index.children) {
      const original = await sourceClient.getManifest(`apps/multi-${kind}`, child.digest);
      const childCopy = await destClient.getManifest(`ferry-acme/multi-${kind}`, child.digest);
      expect(childCopy.bytes.equals(original.bytes)).toBe(true);
      expect(childCopy.mediaType).toBe(child.mediaType);
      for (const blob of child.blobs) {
        const bytes = await readAll(await destClient.getBlob(`ferry-acme/multi-${kind}`, blob));
        expect(sha256(bytes)).toBe(blob);
      }
    }
  });

  it('copies again without uploading blobs the destination holds', async () => {
    const index = await pushMultiPlatform(sourceClient, 'apps/again', 'v1', 'oci');
    await copyImage(sourceClient, 'apps/again', 'v1', destClient, 'ferry-acme/again', 'v1');
    const methods: string[] = [];
    const counting = new RegistryClient({
      registry: dest.host,
      insecure: true,
      fetch: (input, init) => {
        methods.push(init?.method ?? 'GET');
        return fetch(input, init);
      },
    });

    const copied = await copyImage(
      sourceClient,
      'apps/again',
      'v1',
      counting,
      'ferry-acme/again',
      'v1-again',
    );

    expect(copied.digest).toBe(index.digest);
    expect(methods.filter((method) => method === 'POST')).toEqual([]);
    expect(methods.filter((method) => method === 'HEAD')).toHaveLength(6);
  });

  it('mounts a blob from another repository of the same registry', async () => {
    const blob = randomBytes(1024);
    await sourceClient.pushBlob('mount/from', sha256(blob), blob.length, blob);

    await expect(sourceClient.mountBlob('mount/to', sha256(blob), 'mount/from')).resolves.toBe(true);
    await expect(sourceClient.hasBlob('mount/to', sha256(blob))).resolves.toBe(true);
    await expect(sourceClient.mountBlob('mount/to', sha256(randomBytes(8)), 'mount/from')).resolves.toBe(
      false,
    );
  });

  it('says which registry, repository and reference when a manifest is missing', async () => {
    const missing = sourceClient.getManifest('apps/none', 'v9');

    await expect(missing).rejects.toThrow(RegistryError);
    await expect(missing).rejects.toThrow(`${source.host}/apps/none: get manifest v9 failed: HTTP 404`);
  });
});
