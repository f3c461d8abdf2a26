import { createHash, randomBytes } from 'node:crypto';
import { pushArtifact } from '../../lambda/oci/artifact';
import { RegistryClient, type RegistryClientOptions } from '../../lambda/oci/client';
import { copyBlob, copyImage, copyManifests, planCopy } from '../../lambda/oci/copy';
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
} from '../../lambda/oci/media-types';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { type FaultProxy, type ProxiedRequest, startFaultProxy } from '../support/fault-proxy';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const CREDENTIALS = { username: 'ferry', password: 'copy-test-secret' };
/** Fast retries: the faults below are deterministic, waiting longer proves nothing. */
const QUICK_RETRY = { attempts: 5, baseDelayMs: 5 };

type Kind = 'docker' | 'oci' | 'oci-index' | 'docker-list' | 'helm';

/** What a test pushed: the top manifest, every manifest under it, every blob's bytes. */
interface Pushed {
  readonly digest: string;
  readonly mediaType: string;
  readonly manifests: readonly string[];
  readonly blobs: ReadonlyMap<string, Buffer>;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function pushBlobs(client: RegistryClient, repository: string, blobs: readonly Buffer[]) {
  for (const blob of blobs) await client.pushBlob(repository, sha256(blob), blob.length, blob);
}

/** A one-platform image: a config and `layers` random layers, pushed by digest. */
async function pushManifest(
  client: RegistryClient,
  repository: string,
  kind: 'docker' | 'oci',
  architecture: string,
  layerSizes: readonly number[] = [1_200_000, 3000],
): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers' } }));
  const layers = layerSizes.map((size) => randomBytes(size));
  await pushBlobs(client, repository, [config, ...layers]);
  const mediaType = kind === 'oci' ? OCI_IMAGE_MANIFEST : DOCKER_MANIFEST;
  const bytes = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType,
        config: {
          mediaType: kind === 'oci' ? OCI_IMAGE_CONFIG : DOCKER_CONFIG,
          size: config.length,
          digest: sha256(config),
        },
        layers: layers.map((layer) => ({
          mediaType: kind === 'oci' ? OCI_IMAGE_LAYER_GZIP : DOCKER_LAYER_GZIP,
          size: layer.length,
          digest: sha256(layer),
        })),
      },
      null,
      3, // as some tools indent: the copy must keep these exact bytes
    ),
  );
  const digest = await client.putManifest(repository, sha256(bytes), bytes, mediaType);
  const blobs = new Map([config, ...layers].map((blob) => [sha256(blob), blob]));
  return { digest, mediaType, manifests: [digest], blobs };
}

/** Pushes an image of `kind` and tags it `tag`. */
async function pushImage(
  client: RegistryClient,
  repository: string,
  tag: string,
  kind: Kind,
): Promise<Pushed> {
  if (kind === 'helm') {
    const config = Buffer.from('{"name":"shop","version":"0.1.0","apiVersion":"v2"}');
    const chart = randomBytes(40_000);
    const pushed = await pushArtifact(client, repository, tag, {
      config: { mediaType: HELM_CONFIG, bytes: config },
      layers: [{ mediaType: HELM_CHART_LAYER, bytes: chart }],
      annotations: { 'org.opencontainers.image.title': 'shop' },
    });
    return {
      digest: pushed.digest,
      mediaType: pushed.mediaType,
      manifests: [pushed.digest],
      blobs: new Map([config, chart].map((blob) => [sha256(blob), blob])),
    };
  }
  if (kind === 'docker' || kind === 'oci') {
    const image = await pushManifest(client, repository, kind, 'amd64');
    const bytes = (await client.getManifest(repository, image.digest)).bytes;
    await client.putManifest(repository, tag, bytes, image.mediaType);
    return image;
  }
  const childKind = kind === 'oci-index' ? 'oci' : 'docker';
  const children = [
    await pushManifest(client, repository, childKind, 'amd64'),
    await pushManifest(client, repository, childKind, 'arm64'),
  ];
  const mediaType = kind === 'oci-index' ? OCI_IMAGE_INDEX : DOCKER_MANIFEST_LIST;
  const manifests = await Promise.all(
    children.map(async (child, i) => ({
      mediaType: child.mediaType,
      digest: child.digest,
      size: (await client.getManifest(repository, child.digest)).bytes.length,
      platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
    })),
  );
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
  const digest = await client.putManifest(repository, tag, bytes, mediaType);
  const blobs = new Map(children.flatMap((child) => [...child.blobs]));
  return { digest, mediaType, manifests: [...children.map((child) => child.digest), digest], blobs };
}

/** The destination holds the same manifests (same bytes) and the same blob contents as the source. */
async function expectExactCopy(
  from: RegistryClient,
  fromRepository: string,
  to: RegistryClient,
  toRepository: string,
  tag: string,
  pushed: Pushed,
) {
  const top = await to.getManifest(toRepository, tag);
  expect(top.digest).toBe(pushed.digest);
  expect(top.mediaType).toBe(pushed.mediaType);
  for (const digest of pushed.manifests) {
    const [original, copy] = await Promise.all([
      from.getManifest(fromRepository, digest),
      to.getManifest(toRepository, digest),
    ]);
    expect(copy.bytes.equals(original.bytes)).toBe(true);
    expect(copy.mediaType).toBe(original.mediaType);
  }
  for (const [digest, bytes] of pushed.blobs) {
    const copied = await readAll(await to.getBlob(toRepository, digest));
    expect(copied.equals(bytes)).toBe(true);
  }
}

const uploadBodies = (requests: readonly ProxiedRequest[]) =>
  requests.filter(
    (request) =>
      (request.method === 'PUT' || request.method === 'PATCH') &&
      request.url.includes('/blobs/uploads/') &&
      request.bodyBytes > 0,
  );
const digestOf = (request: ProxiedRequest) => new URL(request.url, 'http://proxy').searchParams.get('digest');

describe('copying images between real registries', () => {
  let source: LocalRegistry;
  let dest: LocalRegistry;
  let sourceClient: RegistryClient;
  let destClient: RegistryClient;
  const proxies: FaultProxy[] = [];

  /** A client for `registry` through a new fault proxy (stopped after all tests). */
  async function throughProxy(
    registry: LocalRegistry,
    options: Partial<RegistryClientOptions> = {},
  ): Promise<{ proxy: FaultProxy; client: RegistryClient }> {
    const proxy = await startFaultProxy(registry.host);
    proxies.push(proxy);
    const client = new RegistryClient({
      registry: proxy.host,
      insecure: true,
      retry: QUICK_RETRY,
      ...(registry.credentials && { credentials: registry.credentials }),
      ...options,
    });
    return { proxy, client };
  }

  beforeAll(async () => {
    [source, dest] = await Promise.all([startRegistry(), startRegistry({ auth: CREDENTIALS })]);
    sourceClient = new RegistryClient({ registry: source.host, insecure: true });
    destClient = new RegistryClient({ registry: dest.host, insecure: true, credentials: CREDENTIALS });
  });
  afterAll(async () => {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    await Promise.all([source?.stop(), dest?.stop()]);
  });

  it('serves the destination behind Basic auth', async () => {
    const anonymous = new RegistryClient({ registry: dest.host, insecure: true });

    await expect(anonymous.hasBlob('any/thing', sha256(Buffer.from('x')))).rejects.toThrow(
      'the registry asks for credentials (Basic) and none were given',
    );
  });

  it.each([
    ['a Docker v2 schema 2 manifest', 'docker'],
    ['an OCI image manifest', 'oci'],
    ['an OCI index with two platforms', 'oci-index'],
    ['a Docker manifest list with two platforms', 'docker-list'],
    ['a Helm chart (OCI artifact)', 'helm'],
  ] as const)('copies %s byte for byte, blobs included', async (_, kind) => {
    const pushed = await pushImage(sourceClient, `kinds/${kind}`, 'v1', kind);

    const copied = await copyImage(sourceClient, `kinds/${kind}`, 'v1', destClient, `copied/${kind}`, 'v1');

    expect(copied).toMatchObject({
      digest: pushed.digest,
      mediaType: pushed.mediaType,
      blobsCopied: pushed.blobs.size,
      blobsSkipped: 0,
      blobsMounted: 0,
      bytesCopied: [...pushed.blobs.values()].reduce((sum, blob) => sum + blob.length, 0),
    });
    expect(copied.durationMs).toBeGreaterThanOrEqual(0);
    await expectExactCopy(sourceClient, `kinds/${kind}`, destClient, `copied/${kind}`, 'v1', pushed);
  });

  it('skips every blob on a second copy', async () => {
    const pushed = await pushImage(sourceClient, 'again/app', 'v1', 'oci-index');
    await copyImage(sourceClient, 'again/app', 'v1', destClient, 'again/app', 'v1');
    const { proxy, client } = await throughProxy(dest);

    const second = await copyImage(sourceClient, 'again/app', 'v1', client, 'again/app', 'v1-again');

    expect(second).toMatchObject({
      digest: pushed.digest,
      blobsCopied: 0,
      blobsSkipped: pushed.blobs.size,
      blobsMounted: 0,
      bytesCopied: 0,
    });
    expect(uploadBodies(proxy.requests)).toEqual([]);
    expect(proxy.requests.filter((request) => request.method === 'POST')).toEqual([]);
    await expectExactCopy(sourceClient, 'again/app', destClient, 'again/app', 'v1-again', pushed);
  });

  it('mounts blobs from another repository of the same registry instead of sending them', async () => {
    const pushed = await pushImage(destClient, 'mount/from', 'v1', 'oci');
    const { proxy, client } = await throughProxy(dest);

    const copied = await copyImage(client, 'mount/from', 'v1', client, 'mount/to', 'v1');

    expect(copied).toMatchObject({ blobsMounted: pushed.blobs.size, blobsCopied: 0, bytesCopied: 0 });
    expect(uploadBodies(proxy.requests)).toEqual([]);
    expect(proxy.requests.filter((request) => request.url.includes('mount='))).toHaveLength(
      pushed.blobs.size,
    );
    await expectExactCopy(destClient, 'mount/from', destClient, 'mount/to', 'v1', pushed);
  });

  it('splits a copy into a plan, one task per blob and the manifests', async () => {
    const pushed = await pushImage(sourceClient, 'units/app', 'v3', 'docker-list');

    const plan = await planCopy(sourceClient, 'units/app', 'v3');
    const top = plan.manifests[plan.manifests.length - 1]!;
    const copiedBlobs = await Promise.all(
      plan.blobs.map((blob) => copyBlob(sourceClient, 'units/app', destClient, 'units/app', blob)),
    );
    const again = await copyBlob(sourceClient, 'units/app', destClient, 'units/app', plan.blobs[0]!);
    const copied = await copyManifests(sourceClient, 'units/app', top.digest, destClient, 'units/app', 'v3');

    expect(plan.manifests.map((manifest) => manifest.digest)).toEqual(pushed.manifests);
    expect(top).toEqual({ digest: pushed.digest, mediaType: DOCKER_MANIFEST_LIST, size: expect.any(Number) });
    expect(plan.blobs.map((blob) => blob.digest).sort()).toEqual([...pushed.blobs.keys()].sort());
    expect(plan.blobs.every((blob) => blob.size === pushed.blobs.get(blob.digest)!.length)).toBe(true);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    expect(copiedBlobs.every((blob) => blob.outcome === 'copied' && blob.copied)).toBe(true);
    expect(again).toMatchObject({ outcome: 'skipped', copied: false, bytesCopied: 0 });
    expect(copied).toEqual(top);
    await expectExactCopy(sourceClient, 'units/app', destClient, 'units/app', 'v3', pushed);
  });

  it('refuses to put the manifests before their blobs are there', async () => {
    await pushImage(sourceClient, 'units/early', 'v1', 'oci');

    await expect(
      copyManifests(sourceClient, 'units/early', 'v1', destClient, 'units/early', 'v1'),
    ).rejects.toThrow(/put manifest .*HTTP 400 MANIFEST_BLOB_UNKNOWN/);
  });

  it('uploads in chunks (PATCH with Content-Range, then PUT) when asked', async () => {
    const pushed = await pushImage(sourceClient, 'chunks/app', 'v1', 'oci');
    const { proxy, client } = await throughProxy(dest, { chunkSize: 256 * 1024 });

    const copied = await copyImage(sourceClient, 'chunks/app', 'v1', client, 'chunks/app', 'v1', {
      chunked: true,
    });

    expect(copied.blobsCopied).toBe(pushed.blobs.size);
    const patches = proxy.requests.filter((request) => request.method === 'PATCH');
    // 1.2 MB in 256 KiB chunks is 5 PATCHes; the 3 kB layer and the config one each
    expect(patches).toHaveLength(7);
    expect(patches.reduce((sum, patch) => sum + patch.bodyBytes, 0)).toBe(
      [...pushed.blobs.values()].reduce((sum, blob) => sum + blob.length, 0),
    );
    await expectExactCopy(sourceClient, 'chunks/app', destClient, 'chunks/app', 'v1', pushed);
  });

  it('follows a download redirected to another host without sending it the credentials', async () => {
    // The authenticated registry sends blob downloads to "storage": here the anonymous one, which
    // holds the same blobs under the same name, behind a proxy that records what it is sent.
    const pushed = await pushImage(destClient, 'redirect/app', 'v1', 'oci');
    for (const [digest, bytes] of pushed.blobs)
      await sourceClient.pushBlob('redirect/app', digest, bytes.length, bytes);
    const storage = await startFaultProxy(source.host);
    proxies.push(storage);
    const { proxy, client } = await throughProxy(dest);
    proxy.addFault({
      method: 'GET',
      path: /\/blobs\//,
      times: Number.POSITIVE_INFINITY,
      fault: { kind: 'redirect', to: storage.host },
    });

    const copied = await copyImage(client, 'redirect/app', 'v1', sourceClient, 'redirected/app', 'v1');

    expect(copied).toMatchObject({ digest: pushed.digest, blobsCopied: pushed.blobs.size });
    const redirected = proxy.requests.filter((request) => request.status === 307);
    expect(redirected).toHaveLength(pushed.blobs.size);
    expect(redirected.every((request) => request.authorization)).toBe(true);
    const downloads = storage.requests.filter((request) => request.method === 'GET');
    expect(downloads).toHaveLength(pushed.blobs.size);
    expect(downloads.some((request) => request.authorization)).toBe(false);
    await expectExactCopy(destClient, 'redirect/app', sourceClient, 'redirected/app', 'v1', pushed);
  });

  describe('under faults', () => {
    it('sends a blob again when its upload is cut mid-stream', async () => {
      const pushed = await pushImage(sourceClient, 'faults/cut', 'v1', 'oci');
      const big = [...pushed.blobs].find(([, bytes]) => bytes.length > 1_000_000)![0];
      const { proxy, client } = await throughProxy(dest);
      proxy.addFault({
        method: 'PUT',
        path: new RegExp(`/blobs/uploads/.*digest=sha256%3A${big.slice('sha256:'.length)}`),
        fault: { kind: 'cut-request', afterBytes: 300_000 },
      });

      const copied = await copyImage(sourceClient, 'faults/cut', 'v1', client, 'faults/cut', 'v1');

      expect(copied.digest).toBe(pushed.digest);
      const cut = proxy.requests.filter((request) => request.fault === 'cut-request');
      expect(cut).toHaveLength(1);
      expect(digestOf(cut[0]!)).toBe(big);
      expect(cut[0]!.bodyBytes).toBe(300_000);
      expect(uploadBodies(proxy.requests).filter((request) => digestOf(request) === big)).toHaveLength(2);
      await expectExactCopy(sourceClient, 'faults/cut', destClient, 'faults/cut', 'v1', pushed);
    });

    it('sends a chunked blob again when a chunk is cut mid-stream', async () => {
      const pushed = await pushImage(sourceClient, 'faults/cut-chunk', 'v1', 'oci');
      const { proxy, client } = await throughProxy(dest, { chunkSize: 256 * 1024 });
      proxy.addFault({ method: 'PATCH', skip: 2, fault: { kind: 'cut-request', afterBytes: 1000 } });

      const copied = await copyImage(
        sourceClient,
        'faults/cut-chunk',
        'v1',
        client,
        'faults/cut-chunk',
        'v1',
        {
          chunked: true,
          concurrency: 1,
        },
      );

      expect(copied.digest).toBe(pushed.digest);
      expect(proxy.requests.filter((request) => request.fault === 'cut-request')).toHaveLength(1);
      await expectExactCopy(sourceClient, 'faults/cut-chunk', destClient, 'faults/cut-chunk', 'v1', pushed);
    });

    it('downloads a blob again when the source connection drops mid-stream', async () => {
      const pushed = await pushImage(sourceClient, 'faults/drop', 'v1', 'docker');
      const big = [...pushed.blobs].find(([, bytes]) => bytes.length > 1_000_000)![0];
      const from = await throughProxy(source);
      from.proxy.addFault({
        method: 'GET',
        path: new RegExp(`/blobs/${big}$`),
        fault: { kind: 'cut-response', afterBytes: 400_000 },
      });

      const copied = await copyImage(from.client, 'faults/drop', 'v1', destClient, 'faults/drop', 'v1');

      expect(copied.digest).toBe(pushed.digest);
      expect(from.proxy.requests.filter((request) => request.fault === 'cut-response')).toHaveLength(1);
      expect(from.proxy.requests.filter((request) => request.url.endsWith(big))).toHaveLength(2);
      await expectExactCopy(sourceClient, 'faults/drop', destClient, 'faults/drop', 'v1', pushed);
    });

    it('tries again when connections are reset before an answer', async () => {
      const pushed = await pushImage(sourceClient, 'faults/reset', 'v1', 'helm');
      const to = await throughProxy(dest);
      to.proxy.addFault({ times: 3, fault: { kind: 'reset' } });

      const copied = await copyImage(sourceClient, 'faults/reset', 'v1', to.client, 'faults/reset', 'v1');

      expect(copied.digest).toBe(pushed.digest);
      expect(to.proxy.requests.filter((request) => request.fault === 'reset')).toHaveLength(3);
      await expectExactCopy(sourceClient, 'faults/reset', destClient, 'faults/reset', 'v1', pushed);
    });

    it('tries again after HTTP 500s from either side', async () => {
      const pushed = await pushImage(sourceClient, 'faults/500', 'v1', 'oci-index');
      const from = await throughProxy(source);
      const to = await throughProxy(dest);
      from.proxy.addFault({ path: /\/blobs\//, times: 3, fault: { kind: 'status', status: 500 } });
      to.proxy.addFault({ times: 3, fault: { kind: 'status', status: 503 } });

      const copied = await copyImage(from.client, 'faults/500', 'v1', to.client, 'faults/500', 'v1');

      expect(copied.digest).toBe(pushed.digest);
      expect(from.proxy.requests.filter((request) => request.status === 500)).toHaveLength(3);
      expect(to.proxy.requests.filter((request) => request.status === 503)).toHaveLength(3);
      await expectExactCopy(sourceClient, 'faults/500', destClient, 'faults/500', 'v1', pushed);
    });

    it('waits as long as a 429 Retry-After asks', async () => {
      const pushed = await pushImage(sourceClient, 'faults/429', 'v1', 'helm');
      const from = await throughProxy(source);
      from.proxy.addFault({
        method: 'GET',
        path: /\/blobs\//,
        fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
      });

      const copied = await copyImage(from.client, 'faults/429', 'v1', destClient, 'faults/429', 'v1');

      expect(copied.digest).toBe(pushed.digest);
      expect(copied.durationMs).toBeGreaterThanOrEqual(950);
      expect(from.proxy.requests.filter((request) => request.status === 429)).toHaveLength(1);
      await expectExactCopy(sourceClient, 'faults/429', destClient, 'faults/429', 'v1', pushed);
    });

    it('fails naming the blob when the source serves tampered bytes, and stores nothing', async () => {
      const pushed = await pushImage(sourceClient, 'faults/tamper', 'v1', 'oci');
      const from = await throughProxy(source);
      from.proxy.addFault({ method: 'GET', path: /\/blobs\//, fault: { kind: 'tamper' } });

      const failure = copyImage(from.client, 'faults/tamper', 'v1', destClient, 'faults/tamper', 'v1');

      await expect(failure).rejects.toThrow(/served bytes of another digest/);
      const tampered = from.proxy.requests.find((request) => request.fault === 'tamper')!;
      const digest = tampered.url.slice(tampered.url.lastIndexOf('/') + 1);
      await expect(failure).rejects.toThrow(digest);
      await expect(destClient.hasBlob('faults/tamper', digest)).resolves.toBe(false);
      await expect(destClient.headManifest('faults/tamper', 'v1')).resolves.toBeUndefined();
      expect(pushed.blobs.has(digest)).toBe(true);
    });

    it('fails naming the manifest when the source serves a tampered child manifest', async () => {
      const pushed = await pushImage(sourceClient, 'faults/tamper-index', 'v1', 'oci-index');
      const from = await throughProxy(source);
      from.proxy.addFault({ method: 'GET', path: /\/manifests\/sha256:/, fault: { kind: 'tamper' } });

      const failure = copyImage(
        from.client,
        'faults/tamper-index',
        'v1',
        destClient,
        'faults/tamper-index',
        'v1',
      );

      await expect(failure).rejects.toThrow(`get manifest ${pushed.manifests[0]} failed`);
      await expect(failure).rejects.toThrow('the registry served bytes whose digest is');
    });

    it('resumes an interrupted copy without sending again the blobs already there', async () => {
      const pushed = await pushManifest(
        sourceClient,
        'faults/resume',
        'oci',
        'amd64',
        [900_000, 700_000, 500_000],
      );
      const manifest = await sourceClient.getManifest('faults/resume', pushed.digest);
      await sourceClient.putManifest('faults/resume', 'v1', manifest.bytes, pushed.mediaType);
      const { proxy, client } = await throughProxy(dest);
      // The first two blob uploads get through; every later one is cut, so the copy gives up.
      proxy.addFault({
        method: 'PUT',
        path: /\/blobs\/uploads\//,
        skip: 2,
        times: Number.POSITIVE_INFINITY,
        fault: { kind: 'cut-request', afterBytes: 0 },
      });

      const interrupted = copyImage(sourceClient, 'faults/resume', 'v1', client, 'faults/resume', 'v1');
      await expect(interrupted).rejects.toThrow(/push blob sha256:[0-9a-f]{64} failed: cannot reach/);
      const firstRun = proxy.requests.length;
      const stored = uploadBodies(proxy.requests)
        .filter((request) => request.status === 201)
        .map(digestOf);
      expect(stored).toHaveLength(2);
      await expect(destClient.headManifest('faults/resume', 'v1')).resolves.toBeUndefined();
      proxy.clearFaults();

      const resumed = await copyImage(sourceClient, 'faults/resume', 'v1', client, 'faults/resume', 'v1');

      const missing = [...pushed.blobs.keys()].filter((digest) => !stored.includes(digest));
      const resent = uploadBodies(proxy.requests.slice(firstRun));
      expect(resent.map(digestOf).sort()).toEqual(missing.sort());
      expect(resent.reduce((sum, request) => sum + request.bodyBytes, 0)).toBe(
        missing.reduce((sum, digest) => sum + pushed.blobs.get(digest)!.length, 0),
      );
      expect(resumed).toMatchObject({ digest: pushed.digest, blobsSkipped: 2, blobsCopied: 2 });
      await expectExactCopy(sourceClient, 'faults/resume', destClient, 'faults/resume', 'v1', pushed);
    });
  });
});
