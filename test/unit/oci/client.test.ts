import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseAuthChallenges, RegistryClient, RegistryError } from '../../../lambda/oci/client';
import { OCI_IMAGE_MANIFEST } from '../../../lambda/oci/media-types';

interface Seen {
  readonly method: string;
  readonly url: URL;
  readonly headers: Headers;
  readonly body: Buffer | undefined;
}

type Handler = (request: Seen) => Response | Promise<Response>;

/** A fetch that records every request and answers with `handler`. */
function fakeFetch(handler: Handler): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const fake = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    let body: Buffer | undefined;
    if (Buffer.isBuffer(init.body)) body = init.body;
    else if (init.body && typeof init.body === 'object' && Symbol.asyncIterator in init.body) {
      const chunks: Buffer[] = [];
      for await (const chunk of init.body as AsyncIterable<Buffer>) chunks.push(chunk);
      body = Buffer.concat(chunks);
    }
    const request: Seen = {
      method: init.method ?? 'GET',
      url: new URL(input instanceof Request ? input.url : input.toString()),
      headers: new Headers(init.headers),
      body,
    };
    seen.push(request);
    return handler(request);
  };
  return { fetch: fake as typeof fetch, seen };
}

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_IMAGE_MANIFEST }));
const MANIFEST_DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}`;
const served = () => new Response(MANIFEST, { status: 200, headers: { 'content-type': OCI_IMAGE_MANIFEST } });
const noRetryWait = { attempts: 3, baseDelayMs: 0 };

describe('parseAuthChallenges', () => {
  it('reads a Bearer challenge with its realm, service and scope', () => {
    const header =
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",' +
      'scope="repository:a/b:pull,push"';
    expect(parseAuthChallenges(header)).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example.com/token',
          service: 'registry.example.com',
          scope: 'repository:a/b:pull,push',
        },
      },
    ]);
  });

  it('reads several challenges, unquoted values and escapes', () => {
    expect(
      parseAuthChallenges(
        'Basic realm="Registry \\"main\\"", Bearer realm=https://t.example/token, error=invalid_token',
      ),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'Registry "main"' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', error: 'invalid_token' } },
    ]);
  });

  it('gives nothing for an empty header', () => {
    expect(parseAuthChallenges('')).toEqual([]);
  });
});

describe('RegistryClient authentication', () => {
  const bearerChallenge = (scope: string) =>
    new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', {
      status: 401,
      headers: {
        'www-authenticate': `Bearer realm="https://auth.example.com/token",service="reg",scope="${scope}"`,
      },
    });

  it('fetches a Bearer token from the realm with the credentials, then reuses it per scope', async () => {
    let issued = 0;
    const { fetch, seen } = fakeFetch((request) => {
      if (request.url.host === 'auth.example.com') {
        issued++;
        return Response.json({ token: `token-${issued}`, expires_in: 300 });
      }
      if (request.headers.get('authorization') !== 'Bearer token-1') {
        return bearerChallenge('repository:acme/web:pull');
      }
      return served();
    });
    const client = new RegistryClient({
      registry: 'registry.example.com',
      credentials: { username: 'robot', password: 's3cret' },
      fetch,
    });

    const first = await client.getManifest('acme/web', '1.0');
    const second = await client.getManifest('acme/web', MANIFEST_DIGEST);

    expect(first.digest).toBe(MANIFEST_DIGEST);
    expect(second.bytes).toEqual(MANIFEST);
    expect(issued).toBe(1);
    const tokenRequest = seen.find((request) => request.url.host === 'auth.example.com')!;
    expect(tokenRequest.url.searchParams.get('service')).toBe('reg');
    expect(tokenRequest.url.searchParams.getAll('scope')).toEqual(['repository:acme/web:pull']);
    expect(tokenRequest.headers.get('authorization')).toBe(
      `Basic ${Buffer.from('robot:s3cret').toString('base64')}`,
    );
    expect(seen.map((request) => `${request.method} ${request.url.host}${request.url.pathname}`)).toEqual([
      'GET registry.example.com/v2/acme/web/manifests/1.0',
      'GET auth.example.com/token',
      'GET registry.example.com/v2/acme/web/manifests/1.0',
      `GET registry.example.com/v2/acme/web/manifests/${MANIFEST_DIGEST}`,
    ]);
  });

  it('fetches a new token for another scope, before sending, once it knows the realm', async () => {
    const tokens: string[] = [];
    const { fetch, seen } = fakeFetch((request) => {
      if (request.url.host === 'auth.example.com') {
        const scope = request.url.searchParams.getAll('scope').join(' ');
        tokens.push(scope);
        return Response.json({ access_token: `for ${scope}` });
      }
      const wanted = request.url.pathname.includes('/acme/web/')
        ? 'repository:acme/web:pull'
        : 'repository:acme/api:pull';
      if (request.headers.get('authorization') !== `Bearer for ${wanted}`) return bearerChallenge(wanted);
      return served();
    });
    const client = new RegistryClient({ registry: 'registry.example.com', fetch });

    await client.getManifest('acme/web', 'v1');
    await client.getManifest('acme/api', 'v1');

    expect(tokens).toEqual(['repository:acme/web:pull', 'repository:acme/api:pull']);
    expect(seen.filter((request) => request.url.host === 'auth.example.com')).toHaveLength(2);
    // anonymous: no credentials go to the realm
    expect(seen.every((request) => !request.headers.get('authorization')?.startsWith('Basic'))).toBe(true);
    // the second repository's manifest was fetched once, with its token already in hand
    expect(seen.filter((request) => request.url.pathname === '/v2/acme/api/manifests/v1')).toHaveLength(1);
  });

  it('answers a Basic challenge with the credentials', async () => {
    const expected = `Basic ${Buffer.from('robot:s3cret').toString('base64')}`;
    const { fetch, seen } = fakeFetch((request) =>
      request.headers.get('authorization') === expected
        ? served()
        : new Response('', { status: 401, headers: { 'www-authenticate': 'Basic realm="registry"' } }),
    );
    const client = new RegistryClient({
      registry: '127.0.0.1:5000',
      insecure: true,
      credentials: { username: 'robot', password: 's3cret' },
      fetch,
    });

    await client.getManifest('acme/web', 'v1');
    await client.getManifest('acme/web', 'v2');

    expect(seen.map((request) => request.url.toString())).toEqual([
      'http://127.0.0.1:5000/v2/acme/web/manifests/v1',
      'http://127.0.0.1:5000/v2/acme/web/manifests/v1',
      'http://127.0.0.1:5000/v2/acme/web/manifests/v2',
    ]);
  });

  it('says the registry wants credentials when a Basic challenge comes and none were given', async () => {
    const { fetch } = fakeFetch(
      () => new Response('', { status: 401, headers: { 'www-authenticate': 'Basic realm="registry"' } }),
    );
    const client = new RegistryClient({ registry: 'registry.example.com', fetch });

    const failure = client.getManifest('acme/web', 'v1');

    await expect(failure).rejects.toThrow(RegistryError);
    await expect(failure).rejects.toThrow(
      'registry.example.com/acme/web: get manifest v1 failed: ' +
        'the registry asks for credentials (Basic) and none were given',
    );
  });

  it('reports refused credentials by user name, never the password', async () => {
    const { fetch } = fakeFetch((request) =>
      request.url.host === 'auth.example.com'
        ? new Response('{"details":"incorrect username or password"}', { status: 401 })
        : bearerChallenge('repository:acme/web:pull'),
    );
    const client = new RegistryClient({
      registry: 'registry.example.com',
      credentials: { username: 'robot', password: 'hunter2-secret' },
      fetch,
    });

    const error = await client.getManifest('acme/web', 'v1').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(RegistryError);
    const message = (error as RegistryError).message;
    expect(message).toContain('registry.example.com/acme/web: get manifest v1: ');
    expect(message).toContain('get a token from https://auth.example.com/token failed');
    expect(message).toMatch(/refused the credentials of robot/);
    expect(message).not.toContain('hunter2');
    expect(JSON.stringify(error)).not.toContain('hunter2');
    expect((error as RegistryError).status).toBe(401);
  });
});

describe('RegistryClient retries', () => {
  it('tries again after 5xx and 429, up to three tries', async () => {
    const statuses = [503, 429];
    const { fetch, seen } = fakeFetch(() => {
      const status = statuses.shift();
      return status ? new Response('busy', { status }) : served();
    });
    const client = new RegistryClient({ registry: 'r.example', fetch, retry: noRetryWait });

    const manifest = await client.getManifest('a/b', 'v1');

    expect(manifest.mediaType).toBe(OCI_IMAGE_MANIFEST);
    expect(seen).toHaveLength(3);
  });

  it('gives up after the third try with the status and the registry in the error', async () => {
    const { fetch, seen } = fakeFetch(() =>
      Response.json({ errors: [{ code: 'UNAVAILABLE', message: 'try later' }] }, { status: 503 }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch, retry: noRetryWait });

    const error = await client.hasBlob('a/b', MANIFEST_DIGEST).catch((caught: unknown) => caught);

    expect(seen).toHaveLength(3);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).status).toBe(503);
    expect((error as RegistryError).message).toBe(
      `r.example/a/b: check blob ${MANIFEST_DIGEST} failed: HTTP 503 UNAVAILABLE: try later`,
    );
  });

  it('tries again when the connection is reset, not when it is refused', async () => {
    const failure = (code: string) =>
      new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) });
    let resets = 1;
    const reset = fakeFetch(() => {
      if (resets-- > 0) throw failure('ECONNRESET');
      return new Response(null, { status: 200 });
    });
    const refused = fakeFetch(() => {
      throw failure('ECONNREFUSED');
    });

    await expect(
      new RegistryClient({ registry: 'r.example', fetch: reset.fetch, retry: noRetryWait }).hasBlob(
        'a/b',
        MANIFEST_DIGEST,
      ),
    ).resolves.toBe(true);
    await expect(
      new RegistryClient({ registry: 'r.example', fetch: refused.fetch, retry: noRetryWait }).hasBlob(
        'a/b',
        MANIFEST_DIGEST,
      ),
    ).rejects.toThrow('r.example/a/b: check blob');
    expect(reset.seen).toHaveLength(2);
    expect(refused.seen).toHaveLength(1);
  });

  it('does not retry a 404', async () => {
    const { fetch, seen } = fakeFetch(() =>
      Response.json({ errors: [{ code: 'MANIFEST_UNKNOWN' }] }, { status: 404 }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch, retry: noRetryWait });

    await expect(client.getManifest('a/b', 'v9')).rejects.toThrow(
      'r.example/a/b: get manifest v9 failed: HTTP 404 MANIFEST_UNKNOWN',
    );
    expect(seen).toHaveLength(1);
  });
});

describe('RegistryClient content checks', () => {
  it('refuses a manifest whose bytes do not match the digest asked for', async () => {
    const { fetch } = fakeFetch(() => served());
    const client = new RegistryClient({ registry: 'r.example', fetch });
    const other = `sha256:${'0'.repeat(64)}`;

    await expect(client.getManifest('a/b', other)).rejects.toThrow(
      `served bytes whose digest is ${MANIFEST_DIGEST}`,
    );
  });

  it('uploads a blob with POST then a monolithic PUT carrying the digest and length', async () => {
    const blob = Buffer.from('layer bytes');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const { fetch, seen } = fakeFetch((request) => {
      if (request.method === 'HEAD') return new Response(null, { status: 404 });
      if (request.method === 'POST') {
        return new Response(null, {
          status: 202,
          headers: { location: '/v2/a/b/blobs/uploads/u1?_state=x' },
        });
      }
      return new Response(null, { status: 201, headers: { 'docker-content-digest': digest } });
    });
    const client = new RegistryClient({ registry: 'r.example', fetch });

    const uploaded = await client.pushBlob('a/b', digest, blob.length, () =>
      Readable.from([blob.subarray(0, 5), blob.subarray(5)]),
    );

    expect(uploaded).toBe(true);
    const put = seen[2]!;
    expect(seen.map((request) => request.method)).toEqual(['HEAD', 'POST', 'PUT']);
    expect(put.url.pathname).toBe('/v2/a/b/blobs/uploads/u1');
    expect(put.url.searchParams.get('_state')).toBe('x');
    expect(put.url.searchParams.get('digest')).toBe(digest);
    expect(put.headers.get('content-length')).toBe(String(blob.length));
    expect(put.body).toEqual(blob);
  });

  it('skips a blob the repository already holds', async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 200 }));
    const client = new RegistryClient({ registry: 'r.example', fetch });
    const blob = Buffer.from('x');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

    await expect(client.pushBlob('a/b', digest, 1, blob)).resolves.toBe(false);
    expect(seen.map((request) => request.method)).toEqual(['HEAD']);
  });

  it('refuses to push bytes that do not match the digest given', async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 404 }));
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.pushBlob('a/b', MANIFEST_DIGEST, 1, Buffer.from('x'))).rejects.toThrow(
      `r.example/a/b: push blob ${MANIFEST_DIGEST} failed: the bytes given have digest sha256:`,
    );
    expect(seen).toHaveLength(0);
  });

  it('fails a blob stream whose bytes do not match its digest', async () => {
    const { fetch } = fakeFetch(() => new Response('tampered', { status: 200 }));
    const client = new RegistryClient({ registry: 'r.example', fetch });
    const stream = await client.getBlob('a/b', MANIFEST_DIGEST);

    const reading = (async () => {
      for await (const _ of stream) {
        // drain
      }
    })();

    await expect(reading).rejects.toThrow(
      `r.example/a/b: get blob ${MANIFEST_DIGEST} failed: the registry served bytes of another digest`,
    );
  });
});

describe('RegistryClient uploads', () => {
  const blob = Buffer.from('abcdefghij');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const reset = () =>
    new TypeError('fetch failed', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });

  /** A registry's upload endpoints: a session per POST, PATCH appends at the right offset, PUT closes. */
  function uploads(options: { failPatch?: number[]; status?: 'honest' | 'lost' } = {}) {
    let received = 0;
    let patches = 0;
    let sessions = 0;
    return fakeFetch((request) => {
      if (request.method === 'POST') {
        sessions++;
        received = 0;
        return new Response(null, {
          status: 202,
          headers: { location: `/v2/a/b/blobs/uploads/u${sessions}?at=0` },
        });
      }
      if (request.method === 'PATCH') {
        patches++;
        if (options.failPatch?.includes(patches)) throw reset();
        const [start] = (request.headers.get('content-range') ?? '').split('-').map(Number);
        if (start !== received) return new Response(null, { status: 416 });
        received += request.body?.length ?? 0;
        return new Response(null, {
          status: 202,
          headers: {
            location: `/v2/a/b/blobs/uploads/u${sessions}?at=${received}`,
            range: `0-${received - 1}`,
          },
        });
      }
      if (request.method === 'GET') {
        if (options.status === 'lost') return new Response(null, { status: 404 });
        return new Response(null, {
          status: 204,
          headers: {
            location: `/v2/a/b/blobs/uploads/u${sessions}?at=${received}`,
            range: `0-${received - 1}`,
          },
        });
      }
      return new Response(null, { status: 201, headers: { 'docker-content-digest': digest } });
    });
  }

  it('PATCHes chunks with Content-Range, each to the last Location, then PUTs the digest', async () => {
    const { fetch, seen } = uploads();
    const client = new RegistryClient({ registry: 'r.example', fetch, chunkSize: 4 });

    await expect(client.uploadBlob('a/b', digest, blob.length, blob, { chunked: true })).resolves.toBe(
      'uploaded',
    );

    expect(seen.map((request) => request.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH', 'PUT']);
    const patches = seen.filter((request) => request.method === 'PATCH');
    expect(patches.map((request) => request.headers.get('content-range'))).toEqual(['0-3', '4-7', '8-9']);
    expect(patches.map((request) => request.url.searchParams.get('at'))).toEqual(['0', '4', '8']);
    expect(Buffer.concat(patches.map((request) => request.body!))).toEqual(blob);
    const put = seen[4]!;
    expect(put.url.searchParams.get('at')).toBe('10');
    expect(put.url.searchParams.get('digest')).toBe(digest);
    expect(put.headers.get('content-length')).toBe('0');
  });

  it('chooses chunks above the threshold and one PUT below it', async () => {
    const big = uploads();
    await new RegistryClient({
      registry: 'r.example',
      fetch: big.fetch,
      chunkSize: 4,
      chunkedThreshold: 9,
    }).uploadBlob('a/b', digest, blob.length, blob);
    const small = uploads();
    await new RegistryClient({ registry: 'r.example', fetch: small.fetch, chunkedThreshold: 10 }).uploadBlob(
      'a/b',
      digest,
      blob.length,
      blob,
    );

    expect(big.seen.filter((request) => request.method === 'PATCH')).toHaveLength(3);
    expect(small.seen.map((request) => request.method)).toEqual(['POST', 'PUT']);
  });

  it('sends a failed chunk again from where the registry says the upload got to', async () => {
    const { fetch, seen } = uploads({ failPatch: [2] });
    const client = new RegistryClient({ registry: 'r.example', fetch, chunkSize: 4, retry: noRetryWait });
    let opened = 0;

    await client.uploadBlob(
      'a/b',
      digest,
      blob.length,
      () => {
        opened++;
        return Readable.from([blob]);
      },
      { chunked: true },
    );

    expect(opened).toBe(1);
    expect(seen.map((request) => request.method)).toEqual([
      'POST',
      'PATCH',
      'PATCH',
      'GET',
      'PATCH',
      'PATCH',
      'PUT',
    ]);
    expect(
      seen.filter((request) => request.method === 'PATCH').map((r) => r.headers.get('content-range')),
    ).toEqual(['0-3', '4-7', '4-7', '8-9']);
  });

  it('starts the whole blob again when the registry cannot say how far the upload got', async () => {
    const { fetch, seen } = uploads({ failPatch: [2], status: 'lost' });
    const client = new RegistryClient({ registry: 'r.example', fetch, chunkSize: 4, retry: noRetryWait });
    let opened = 0;

    await client.uploadBlob(
      'a/b',
      digest,
      blob.length,
      () => {
        opened++;
        return Readable.from([blob]);
      },
      { chunked: true },
    );

    expect(opened).toBe(2);
    expect(seen.filter((request) => request.method === 'POST')).toHaveLength(2);
    expect(seen[seen.length - 1]!.url.pathname).toBe('/v2/a/b/blobs/uploads/u2');
  });

  it('mounts from another repository without sending the bytes', async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 201 }));
    const client = new RegistryClient({ registry: 'r.example', fetch });
    let opened = 0;

    const outcome = await client.uploadBlob(
      'a/b',
      digest,
      blob.length,
      () => {
        opened++;
        return Readable.from([blob]);
      },
      { mountFrom: 'c/d' },
    );

    expect(outcome).toBe('mounted');
    expect(opened).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url.searchParams.get('mount')).toBe(digest);
    expect(seen[0]!.url.searchParams.get('from')).toBe('c/d');
  });

  it('uploads into the session a registry opens instead of mounting', async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.method === 'POST'
        ? new Response(null, { status: 202, headers: { location: '/v2/a/b/blobs/uploads/opened' } })
        : new Response(null, { status: 201, headers: { 'docker-content-digest': digest } }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.uploadBlob('a/b', digest, blob.length, blob, { mountFrom: 'c/d' })).resolves.toBe(
      'uploaded',
    );

    expect(seen.map((request) => `${request.method} ${request.url.pathname}`)).toEqual([
      'POST /v2/a/b/blobs/uploads/',
      'PUT /v2/a/b/blobs/uploads/opened',
    ]);
  });

  it('refuses an upload the registry stored under another digest', async () => {
    const other = `sha256:${'1'.repeat(64)}`;
    const { fetch } = fakeFetch((request) =>
      request.method === 'POST'
        ? new Response(null, { status: 202, headers: { location: '/v2/a/b/blobs/uploads/u' } })
        : new Response(null, { status: 201, headers: { 'docker-content-digest': other } }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.uploadBlob('a/b', digest, blob.length, blob)).rejects.toThrow(
      `r.example/a/b: push blob ${digest} failed: the registry stored ${other}`,
    );
  });
});

describe('RegistryClient manifests put and checked', () => {
  it('checks with a HEAD when the registry answers no Docker-Content-Digest', async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.method === 'PUT'
        ? new Response(null, { status: 201 })
        : new Response(null, {
            status: 200,
            headers: {
              'docker-content-digest': MANIFEST_DIGEST,
              'content-type': OCI_IMAGE_MANIFEST,
              'content-length': String(MANIFEST.length),
            },
          }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.putManifest('a/b', 'v1', MANIFEST, OCI_IMAGE_MANIFEST)).resolves.toBe(
      MANIFEST_DIGEST,
    );
    expect(seen.map((request) => `${request.method} ${request.url.pathname}`)).toEqual([
      'PUT /v2/a/b/manifests/v1',
      `HEAD /v2/a/b/manifests/${MANIFEST_DIGEST}`,
    ]);
  });

  it('fails when the registry then does not hold the manifest', async () => {
    const { fetch } = fakeFetch(
      (request) => new Response(null, { status: request.method === 'PUT' ? 201 : 404 }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.putManifest('a/b', 'v1', MANIFEST, OCI_IMAGE_MANIFEST)).rejects.toThrow(
      `r.example/a/b: put manifest v1 failed: the registry does not hold ${MANIFEST_DIGEST} after the put`,
    );
  });

  it('refuses a put the registry stored under another digest', async () => {
    const other = `sha256:${'2'.repeat(64)}`;
    const { fetch } = fakeFetch(
      () => new Response(null, { status: 201, headers: { 'docker-content-digest': other } }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch });

    await expect(client.putManifest('a/b', 'v1', MANIFEST, OCI_IMAGE_MANIFEST)).rejects.toThrow(
      `the registry stored ${other}, expected ${MANIFEST_DIGEST}`,
    );
  });
});

describe('RegistryClient under concurrent calls', () => {
  it('answers a Basic challenge once for calls that were all sent before it', async () => {
    const expected = `Basic ${Buffer.from('robot:s3cret').toString('base64')}`;
    const { fetch, seen } = fakeFetch((request) =>
      request.headers.get('authorization') === expected
        ? new Response(null, { status: 200 })
        : new Response('', { status: 401, headers: { 'www-authenticate': 'Basic realm="registry"' } }),
    );
    const client = new RegistryClient({
      registry: 'r.example',
      credentials: { username: 'robot', password: 's3cret' },
      fetch,
    });

    const found = await Promise.all([1, 2, 3].map(() => client.hasBlob('a/b', MANIFEST_DIGEST)));

    expect(found).toEqual([true, true, true]);
    expect(seen).toHaveLength(6);
  });

  it('fetches one Bearer token for calls that ask at once', async () => {
    let issued = 0;
    const { fetch } = fakeFetch((request) => {
      if (request.url.host === 'auth.example.com') {
        issued++;
        return Response.json({ token: 't' });
      }
      return request.headers.get('authorization') === 'Bearer t'
        ? served()
        : new Response('', {
            status: 401,
            headers: { 'www-authenticate': 'Bearer realm="https://auth.example.com/token",service="reg"' },
          });
    });
    const client = new RegistryClient({ registry: 'registry.example.com', fetch });

    await client.getManifest('acme/web', 'v0');
    await Promise.all([1, 2, 3].map(() => client.getManifest('acme/api', 'v1')));

    expect(issued).toBe(2);
  });
});

describe('RegistryClient blob downloads and waits', () => {
  it('fails a blob stream that runs past its size', async () => {
    const { fetch } = fakeFetch(() => new Response('tampered', { status: 200 }));
    const client = new RegistryClient({ registry: 'r.example', fetch });
    const stream = await client.getBlob('a/b', MANIFEST_DIGEST, 3);

    const reading = (async () => {
      for await (const _ of stream) {
        // drain
      }
    })();

    await expect(reading).rejects.toThrow(
      `r.example/a/b: get blob ${MANIFEST_DIGEST} failed: the registry served more than the 3 bytes`,
    );
  });

  it.each([
    ['seconds', () => '7', 7000, 7000],
    // An HTTP date has whole seconds: a minute ahead is 59 to 60 s away, less what the test took.
    ['an HTTP date', () => new Date(Date.now() + 60_000).toUTCString(), 50_000, 60_000],
  ])('reads Retry-After given in %s', async (_, header, atLeast, atMost) => {
    const { fetch } = fakeFetch(
      () => new Response('slow down', { status: 429, headers: { 'retry-after': header() } }),
    );
    const client = new RegistryClient({ registry: 'r.example', fetch, retry: { attempts: 1 } });

    const error = await client.hasBlob('a/b', MANIFEST_DIGEST).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).retriable).toBe(true);
    expect((error as RegistryError).retryAfterMs).toBeGreaterThanOrEqual(atLeast);
    expect((error as RegistryError).retryAfterMs).toBeLessThanOrEqual(atMost);
  });
});
