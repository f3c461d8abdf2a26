import { createHash } from 'node:crypto';
import { RegistryClient } from '../../../lambda/oci/client';
import { CopyError, copyBlob, copyImage, planCopy } from '../../../lambda/oci/copy';
import {
  DOCKER_FOREIGN_LAYER_GZIP,
  DOCKER_MANIFEST,
  OCI_IMAGE_CONFIG,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_LAYER_GZIP,
  OCI_IMAGE_MANIFEST,
} from '../../../lambda/oci/media-types';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Stored {
  readonly bytes: Buffer;
  readonly mediaType: string;
}

/** A registry's manifests (by tag and digest) and blobs, served read-only; records every request. */
function fakeRegistry(manifests: Record<string, Stored>, blobs: Record<string, Buffer> = {}) {
  const seen: string[] = [];
  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const method = init.method ?? 'GET';
    seen.push(`${method} ${url.pathname}`);
    const manifest = /\/manifests\/(.+)$/.exec(url.pathname);
    if (manifest) {
      const stored = manifests[manifest[1]!];
      if (!stored) return new Response(null, { status: 404 });
      return new Response(method === 'HEAD' ? null : stored.bytes, {
        status: 200,
        headers: { 'content-type': stored.mediaType, 'docker-content-digest': sha256(stored.bytes) },
      });
    }
    const blob = /\/blobs\/(sha256:.+)$/.exec(url.pathname);
    if (blob) {
      const bytes = blobs[blob[1]!];
      if (!bytes) return new Response(null, { status: 404 });
      return new Response(method === 'HEAD' ? null : bytes, { status: 200 });
    }
    return new Response(null, { status: 405 });
  };
  return {
    client: new RegistryClient({ registry: 'r.example', fetch: fetch as typeof globalThis.fetch }),
    seen,
  };
}

function manifest(value: unknown, mediaType: string): Stored {
  return { bytes: Buffer.from(JSON.stringify(value)), mediaType };
}

const config = Buffer.from('{"architecture":"arm64"}');
const layer = Buffer.from('layer');
const shared = Buffer.from('shared layer');
const blob = (bytes: Buffer, mediaType = OCI_IMAGE_LAYER_GZIP) => ({
  mediaType,
  digest: sha256(bytes),
  size: bytes.length,
});
const image = (layers: object[]) =>
  manifest(
    { schemaVersion: 2, mediaType: OCI_IMAGE_MANIFEST, config: blob(config, OCI_IMAGE_CONFIG), layers },
    OCI_IMAGE_MANIFEST,
  );

describe('planCopy', () => {
  it('lists every manifest children first, the top one last, and every blob once', async () => {
    const amd = image([blob(shared), blob(layer)]);
    const arm = image([blob(shared)]);
    const index = manifest(
      {
        schemaVersion: 2,
        mediaType: OCI_IMAGE_INDEX,
        manifests: [amd, arm].map((child) => ({ ...blob(child.bytes, OCI_IMAGE_MANIFEST) })),
      },
      OCI_IMAGE_INDEX,
    );
    const { client } = fakeRegistry({
      v1: index,
      [sha256(amd.bytes)]: amd,
      [sha256(arm.bytes)]: arm,
    });

    const plan = await planCopy(client, 'a/b', 'v1');

    expect(plan.manifests).toEqual([
      { digest: sha256(amd.bytes), size: amd.bytes.length, mediaType: OCI_IMAGE_MANIFEST },
      { digest: sha256(arm.bytes), size: arm.bytes.length, mediaType: OCI_IMAGE_MANIFEST },
      { digest: sha256(index.bytes), size: index.bytes.length, mediaType: OCI_IMAGE_INDEX },
    ]);
    expect(plan.blobs).toEqual([blob(config, OCI_IMAGE_CONFIG), blob(shared), blob(layer)]);
  });

  it('leaves out foreign layers the registry serves from their own URLs', async () => {
    const windows = manifest(
      {
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: blob(config, OCI_IMAGE_CONFIG),
        layers: [
          { ...blob(layer, DOCKER_FOREIGN_LAYER_GZIP), urls: ['https://example.com/base'] },
          blob(shared),
        ],
      },
      DOCKER_MANIFEST,
    );
    const { client } = fakeRegistry({ v1: windows });

    const plan = await planCopy(client, 'a/b', 'v1');

    expect(plan.blobs.map((entry) => entry.digest)).toEqual([sha256(config), sha256(shared)]);
  });

  it('refuses a manifest kind it does not copy, naming it', async () => {
    const schema1 = manifest(
      { schemaVersion: 1, name: 'a/b' },
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
    );
    const { client } = fakeRegistry({ v1: schema1 });

    await expect(planCopy(client, 'a/b', 'v1')).rejects.toThrow(
      new CopyError(
        `r.example/a/b@${sha256(schema1.bytes)} has media type ` +
          'application/vnd.docker.distribution.manifest.v1+prettyjws, which Ferry does not copy',
      ),
    );
  });

  it('refuses an index whose child is not the size the index says', async () => {
    const child = image([blob(layer)]);
    const index = manifest(
      {
        schemaVersion: 2,
        mediaType: OCI_IMAGE_INDEX,
        manifests: [{ ...blob(child.bytes, OCI_IMAGE_MANIFEST), size: child.bytes.length + 1 }],
      },
      OCI_IMAGE_INDEX,
    );
    const { client } = fakeRegistry({ v1: index, [sha256(child.bytes)]: child });

    await expect(planCopy(client, 'a/b', 'v1')).rejects.toThrow(
      `names ${sha256(child.bytes)} with size ${child.bytes.length + 1}; ` +
        `the registry served ${child.bytes.length} bytes`,
    );
  });

  it('refuses a descriptor without a valid digest', async () => {
    const broken = image([{ mediaType: OCI_IMAGE_LAYER_GZIP, digest: 'sha256:nothex', size: 1 }]);
    const { client } = fakeRegistry({ v1: broken });

    await expect(planCopy(client, 'a/b', 'v1')).rejects.toThrow('names a descriptor with an invalid digest');
  });
});

describe('copyBlob and copyImage', () => {
  it('skips a blob the destination holds without reading the source', async () => {
    const source = fakeRegistry({}, { [sha256(layer)]: layer });
    const dest = fakeRegistry({}, { [sha256(layer)]: layer });

    const copied = await copyBlob(source.client, 'a/b', dest.client, 'c/d', blob(layer));

    expect(copied).toEqual({
      digest: sha256(layer),
      size: layer.length,
      outcome: 'skipped',
      copied: false,
      bytesCopied: 0,
    });
    expect(source.seen).toEqual([]);
    expect(dest.seen).toEqual([`HEAD /v2/c/d/blobs/${sha256(layer)}`]);
  });

  it('reports every blob skipped when the destination holds the whole image', async () => {
    const one = image([blob(layer), blob(shared)]);
    const blobs = { [sha256(config)]: config, [sha256(layer)]: layer, [sha256(shared)]: shared };
    const source = fakeRegistry({ v1: one }, blobs);
    const methods: string[] = [];
    const dest = new RegistryClient({
      registry: 'r.example',
      fetch: (async (_input: string | URL | Request, init: RequestInit = {}) => {
        methods.push(init.method ?? 'GET');
        return init.method === 'PUT'
          ? new Response(null, { status: 201, headers: { 'docker-content-digest': sha256(one.bytes) } })
          : new Response(null, { status: 200 });
      }) as typeof fetch,
    });

    const copied = await copyImage(source.client, 'a/b', 'v1', dest, 'c/d', 'v1');

    expect(copied).toMatchObject({
      digest: sha256(one.bytes),
      blobsCopied: 0,
      blobsSkipped: 3,
      blobsMounted: 0,
      bytesCopied: 0,
    });
    expect(source.seen).toEqual(['GET /v2/a/b/manifests/v1']);
    expect(methods).toEqual(['HEAD', 'HEAD', 'HEAD', 'PUT']);
  });
});
