/**
 * A client for one registry over the OCI distribution API, on node:http(s) (or a fetch function
 * given to it: `transport.ts`). It answers the registry's 401
 * challenge (Basic, or a Bearer token fetched from the realm and cached per scope), retries
 * idempotent calls on 5xx, 429 and dropped connections (with backoff, honouring Retry-After), streams
 * blobs both ways (monolithic PUT, or PATCH chunks that resume where the registry got to), mounts
 * blobs across repositories of one registry, and checks every digest it is given against the bytes.
 */

import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { MANIFEST_TYPES } from './media-types';
import { DOCKER_HUB, isDigest } from './reference';
import {
  discard,
  fetchTransport,
  type HttpAnswer,
  nodeTransport,
  readBody,
  type Transport,
} from './transport';

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface RetryOptions {
  /** Tries in all, the first included. @default 5 */
  readonly attempts?: number;
  /**
   * Wait before the second try, doubled before each later one (each wait between half and all of
   * that, at random, and at least what Retry-After asks); 0 retries at once. @default 250
   */
  readonly baseDelayMs?: number;
}

export interface UploadOptions {
  /** Ask the registry to link the blob from this repository of its own first (cross-repository mount). */
  readonly mountFrom?: string;
  /** PATCH the blob in chunks, then PUT; false sends it in one PUT. @default true above `chunkedThreshold` */
  readonly chunked?: boolean;
}

/** How a blob came to be in the repository: sent by Ferry, or linked by the registry from another one. */
export type UploadOutcome = 'uploaded' | 'mounted';

export interface RegistryClientOptions {
  /** host[:port] as references name it: `123456789012.dkr.ecr.eu-west-1.amazonaws.com`, `127.0.0.1:5000`. */
  readonly registry: string;
  /** Speak plain http instead of https. @default false */
  readonly insecure?: boolean;
  /** Sent only when the registry asks for them (Basic), or to its token realm (Bearer). @default anonymous */
  readonly credentials?: RegistryCredentials;
  /** Send every request through this fetch instead (tests, a caller's own). @default node:http(s) */
  readonly fetch?: typeof fetch;
  /** @default 5 attempts, about 250 ms, 500 ms, 1 s and 2 s apart */
  readonly retry?: RetryOptions;
  /** Blobs larger than this are uploaded in chunks unless the caller says otherwise. @default 128 MiB */
  readonly chunkedThreshold?: number;
  /**
   * Bytes per PATCH of a chunked upload, held in memory one at a time per blob (ECR needs 5 MiB or
   * more). @default 16 MiB
   */
  readonly chunkSize?: number;
}

export interface Manifest {
  /** The manifest's own media type: the Content-Type the registry served, else its `mediaType` field. */
  readonly mediaType: string;
  /** `sha256:…` of `bytes` (or of the algorithm the reference named). */
  readonly digest: string;
  /** Exactly the bytes the registry holds: the digest is computed over them. */
  readonly bytes: Buffer;
}

/** A blob body: bytes in memory, or a function that opens a stream (called again for each try). */
export type BlobBody = Buffer | (() => Readable | Promise<Readable>);

/** A registry call that failed: says which registry, repository and operation, never the credentials. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  /** The HTTP status the registry answered, when it answered. */
  readonly status: number | undefined;
  /** A later try may succeed (5xx, 429, a dropped connection). */
  readonly retriable: boolean;
  /** How long the registry asked to wait before the next try (Retry-After), in ms. */
  readonly retryAfterMs: number;

  constructor(
    readonly registry: string,
    readonly repository: string | undefined,
    readonly operation: string,
    readonly detail: string,
    options: { status?: number; retriable?: boolean; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(
      `${repository ? `${registry}/${repository}` : registry}: ${operation} failed: ${detail}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.status = options.status;
    this.retriable = options.retriable ?? false;
    this.retryAfterMs = options.retryAfterMs ?? 0;
  }
}

/** One challenge of a WWW-Authenticate header: the scheme (lower case) and its parameters. */
export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

const CHALLENGE_PART = /\s*,?\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?/y;

/** Parses a WWW-Authenticate header into its challenges: `Bearer realm="…",service="…",scope="…"`. */
export function parseAuthChallenges(header: string): AuthChallenge[] {
  const challenges: { scheme: string; params: Record<string, string> }[] = [];
  CHALLENGE_PART.lastIndex = 0;
  while (CHALLENGE_PART.lastIndex < header.length) {
    const start = CHALLENGE_PART.lastIndex;
    const match = CHALLENGE_PART.exec(header);
    if (!match || CHALLENGE_PART.lastIndex === start) break;
    const [, name, quoted, bare] = match as unknown as [
      string,
      string,
      string | undefined,
      string | undefined,
    ];
    const value = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare;
    const current = challenges[challenges.length - 1];
    if (value === undefined) challenges.push({ scheme: name.toLowerCase(), params: {} });
    else if (current) current.params[name.toLowerCase()] = value;
  }
  return challenges;
}

/** The scope a token must carry for `actions` on `repository`: `repository:ferry/api:pull,push`. */
export function repositoryScope(repository: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${actions}`;
}

const RETRIABLE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const MAX_RETRY_AFTER_MS = 30_000;
const TOKEN_LIFETIME_SECONDS = 60;
const MIB = 1024 * 1024;

interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** A path under the registry (`/v2/…`) or an absolute URL (an upload location). */
  readonly url: string;
  readonly repository: string;
  readonly operation: string;
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  readonly body?: BlobBody;
}

interface Token {
  readonly value: string;
  readonly expiresAt: number;
}

export class RegistryClient {
  readonly registry: string;
  readonly insecure: boolean;
  private readonly baseUrl: string;
  private readonly credentials: RegistryCredentials | undefined;
  private readonly transport: Transport;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly chunkedThreshold: number;
  private readonly chunkSize: number;
  /** Set once the registry answered a Basic challenge. */
  private basic = false;
  /** Set once the registry answered a Bearer challenge: tokens are fetched from here. */
  private bearer: { readonly realm: string; readonly service: string | undefined } | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly pendingTokens = new Map<string, Promise<Token>>();

  constructor(options: RegistryClientOptions) {
    if (!/^[^\s/]+$/.test(options.registry)) {
      throw new Error(`registry "${options.registry}" must be a host[:port], without scheme or path`);
    }
    this.registry = options.registry;
    this.insecure = options.insecure ?? false;
    const host = options.registry === DOCKER_HUB ? 'registry-1.docker.io' : options.registry;
    this.baseUrl = `${this.insecure ? 'http' : 'https'}://${host}`;
    this.credentials = options.credentials;
    this.transport = options.fetch ? fetchTransport(options.fetch) : nodeTransport();
    this.attempts = Math.max(1, options.retry?.attempts ?? 5);
    this.baseDelayMs = Math.max(0, options.retry?.baseDelayMs ?? 250);
    this.chunkedThreshold = options.chunkedThreshold ?? 128 * MIB;
    this.chunkSize = options.chunkSize ?? 16 * MIB;
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize < 1) {
      throw new Error(`chunkSize ${options.chunkSize} must be a positive number of bytes`);
    }
  }

  /** Fetches a manifest by tag or digest; a digest reference is checked against the bytes. */
  async getManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = MANIFEST_TYPES,
  ): Promise<Manifest> {
    const operation = `get manifest ${reference}`;
    const call: Call = {
      method: 'GET',
      url: `/v2/${repository}/manifests/${reference}`,
      repository,
      operation,
      scopes: [repositoryScope(repository, 'pull')],
      headers: { accept: accept.join(', ') },
    };
    return this.retrying(async () => {
      const response = await this.call(call);
      if (response.status !== 200) throw await this.failure(response, repository, operation);
      const bytes = await readBody(response).catch((error: unknown) => {
        throw this.networkFailure(error, call);
      });
      const byDigest = isDigest(reference);
      const digest = digestOf(
        bytes,
        byDigest ? this.algorithmOf(reference, repository, operation) : 'sha256',
      );
      if (byDigest && digest !== reference) {
        throw this.error(repository, operation, `the registry served bytes whose digest is ${digest}`);
      }
      return { mediaType: manifestMediaType(response, bytes), digest, bytes };
    });
  }

  /**
   * Stores a manifest under a tag or its digest; returns its sha256 digest. The registry must agree:
   * the Docker-Content-Digest it answers (or, when it answers none, a HEAD of the digest) is checked.
   */
  async putManifest(
    repository: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
  ): Promise<string> {
    const digest = sha256(bytes);
    const operation = `put manifest ${reference}`;
    const stored = await this.retrying(async () => {
      const response = await this.call({
        method: 'PUT',
        url: `/v2/${repository}/manifests/${reference}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull,push')],
        headers: { 'content-type': mediaType },
        body: bytes,
      });
      if (response.status !== 201 && response.status !== 200)
        throw await this.failure(response, repository, operation);
      discard(response);
      return response.headers.get('docker-content-digest');
    });
    if (stored?.startsWith('sha256:')) {
      if (stored !== digest) {
        throw this.error(repository, operation, `the registry stored ${stored}, expected ${digest}`);
      }
    } else if (stored === null) {
      const found = await this.headManifest(repository, digest);
      if (found?.digest !== digest) {
        throw this.error(repository, operation, `the registry does not hold ${digest} after the put`);
      }
    }
    return digest;
  }

  /**
   * What the registry holds under a tag or digest (HEAD): its digest, media type and size, or
   * undefined when it holds nothing there. A registry that names no digest for a digest reference is
   * taken at its word; for a tag, the manifest is fetched to learn it.
   */
  async headManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = MANIFEST_TYPES,
  ): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    const operation = `check manifest ${reference}`;
    const found = await this.retrying(async () => {
      const response = await this.call({
        method: 'HEAD',
        url: `/v2/${repository}/manifests/${reference}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull')],
        headers: { accept: accept.join(', ') },
      });
      if (response.status !== 200 && response.status !== 404) {
        throw await this.failure(response, repository, operation);
      }
      discard(response);
      if (response.status === 404) return undefined;
      const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
      return {
        digest: response.headers.get('docker-content-digest') ?? '',
        mediaType,
        size: Number(response.headers.get('content-length') ?? Number.NaN),
      };
    });
    if (found === undefined || (found.digest !== '' && Number.isSafeInteger(found.size))) return found;
    if (isDigest(reference) && found.digest === '' && Number.isSafeInteger(found.size)) {
      return { ...found, digest: reference };
    }
    const manifest = await this.getManifest(repository, reference, accept);
    return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
  }

  /** True when the repository holds the blob (HEAD). */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const operation = `check blob ${digest}`;
    return this.retrying(async () => {
      const response = await this.call({
        method: 'HEAD',
        url: `/v2/${repository}/blobs/${digest}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull')],
      });
      if (response.status !== 200 && response.status !== 404) {
        throw await this.failure(response, repository, operation);
      }
      discard(response);
      return response.status === 200;
    });
  }

  /**
   * Streams a blob; the stream fails if the bytes do not match the digest (at its end) or run past
   * `size` when given (at once), and a connection lost mid-stream fails it with a retriable
   * RegistryError. Its last chunk is held back until the digest is checked, so an upload fed from it
   * never completes with the wrong bytes.
   */
  async getBlob(repository: string, digest: string, size?: number): Promise<Readable> {
    const operation = `get blob ${digest}`;
    const algorithm = this.algorithmOf(digest, repository, operation);
    const call: Call = {
      method: 'GET',
      url: `/v2/${repository}/blobs/${digest}`,
      repository,
      operation,
      scopes: [repositoryScope(repository, 'pull')],
    };
    const response = await this.retrying(async () => {
      const response = await this.call(call);
      if (response.status !== 200) throw await this.failure(response, repository, operation);
      return response;
    });
    const verifier = new DigestVerifier(digest, algorithm, size, (detail) =>
      this.error(repository, operation, detail),
    );
    response.body.on('error', (error) => verifier.destroy(this.networkFailure(error, call)));
    verifier.on('close', () => response.body.destroy());
    return response.body.pipe(verifier);
  }

  /**
   * Uploads a blob unless the repository already holds it (HEAD first); returns false when it did
   * not upload. See `uploadBlob` for how.
   */
  async pushBlob(
    repository: string,
    digest: string,
    size: number,
    body: BlobBody,
    options: UploadOptions = {},
  ): Promise<boolean> {
    this.checkBuffer(repository, digest, size, body);
    if (await this.hasBlob(repository, digest)) return false;
    await this.uploadBlob(repository, digest, size, body, options);
    return true;
  }

  /**
   * Makes the repository hold a blob without asking first whether it does: a cross-repository mount
   * when `mountFrom` is given and the registry agrees, else an upload session (POST) finished by one
   * monolithic PUT with `?digest=`, or by PATCH chunks with Content-Range and an empty PUT. A stream
   * body is opened again for each try; a failed chunk is sent again from where the registry says the
   * upload got to, and the whole blob again when it cannot say. The registry checks the digest; the
   * Docker-Content-Digest it answers is checked too.
   */
  async uploadBlob(
    repository: string,
    digest: string,
    size: number,
    body: BlobBody,
    options: UploadOptions = {},
  ): Promise<UploadOutcome> {
    const operation = `push blob ${digest}`;
    this.checkBuffer(repository, digest, size, body);
    const chunked = options.chunked ?? size > this.chunkedThreshold;
    let mountFrom = options.mountFrom;
    return this.retrying(async () => {
      let location: URL | undefined;
      if (mountFrom !== undefined) {
        const mounted = await this.tryMount(repository, digest, mountFrom);
        if (mounted === true) return 'mounted';
        // Refused, or answered with an upload session (202): upload, and do not ask again.
        mountFrom = undefined;
        if (mounted !== false) location = mounted;
      }
      location ??= await this.openUpload(repository, operation);
      const stored = chunked
        ? await this.sendChunks(repository, digest, size, body, location, operation)
        : await this.sendWhole(repository, digest, size, body, location, operation);
      if (stored && stored !== digest)
        throw this.error(repository, operation, `the registry stored ${stored}`);
      return 'uploaded';
    });
  }

  /** Asks the registry to link a blob from another of its repositories; false when it will not. */
  async mountBlob(repository: string, digest: string, fromRepository: string): Promise<boolean> {
    const operation = `mount blob ${digest} from ${fromRepository}`;
    return this.retrying(async () => {
      const mounted = await this.tryMount(repository, digest, fromRepository, true);
      if (mounted instanceof URL) {
        // The registry opened an upload instead: close it, the caller uploads the blob itself.
        await this.call({
          method: 'DELETE',
          url: mounted.toString(),
          repository,
          operation,
          scopes: [repositoryScope(repository, 'pull,push')],
        })
          .then(discard)
          .catch(() => undefined);
        return false;
      }
      return mounted;
    });
  }

  /**
   * One mount request: true when mounted, the upload session's URL when the registry opened one
   * instead (202), false when it refused outright (4xx other than 429; thrown instead when `strict`).
   */
  private async tryMount(
    repository: string,
    digest: string,
    fromRepository: string,
    strict = false,
  ): Promise<boolean | URL> {
    const operation = `mount blob ${digest} from ${fromRepository}`;
    const query = new URLSearchParams({ mount: digest, from: fromRepository });
    let response: HttpAnswer;
    try {
      response = await this.call({
        method: 'POST',
        url: `/v2/${repository}/blobs/uploads/?${query}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull,push'), repositoryScope(fromRepository, 'pull')],
      });
    } catch (error) {
      if (strict || !(error instanceof RegistryError) || error.retriable) throw error;
      return false;
    }
    if (response.status === 201) {
      discard(response);
      return true;
    }
    if (response.status === 202) {
      discard(response);
      return this.uploadLocation(response, repository, operation);
    }
    const failure = await this.failure(response, repository, operation);
    if (strict || failure.retriable) throw failure;
    return false;
  }

  /** Opens an upload session (POST); returns where to send the bytes. */
  private async openUpload(repository: string, operation: string): Promise<URL> {
    const start = await this.call({
      method: 'POST',
      url: `/v2/${repository}/blobs/uploads/`,
      repository,
      operation,
      scopes: [repositoryScope(repository, 'pull,push')],
    });
    if (start.status !== 202) throw await this.failure(start, repository, operation);
    discard(start);
    return this.uploadLocation(start, repository, operation);
  }

  /** The whole blob in one PUT; returns the Docker-Content-Digest the registry answered. */
  private async sendWhole(
    repository: string,
    digest: string,
    size: number,
    body: BlobBody,
    location: URL,
    operation: string,
  ): Promise<string | null> {
    location.searchParams.set('digest', digest);
    const put = await this.call({
      method: 'PUT',
      url: location.toString(),
      repository,
      operation,
      scopes: [repositoryScope(repository, 'pull,push')],
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body,
    });
    if (put.status !== 201) throw await this.failure(put, repository, operation);
    discard(put);
    return put.headers.get('docker-content-digest');
  }

  /** PATCH chunks of `chunkSize` bytes, then an empty PUT with the digest; returns Docker-Content-Digest. */
  private async sendChunks(
    repository: string,
    digest: string,
    size: number,
    body: BlobBody,
    location: URL,
    operation: string,
  ): Promise<string | null> {
    const stream = Buffer.isBuffer(body) ? Readable.from([body]) : await body();
    stream.on('error', ignore);
    let offset = 0;
    try {
      for await (const chunk of chunksOf(stream, this.chunkSize)) {
        if (offset + chunk.length > size) {
          throw this.error(repository, operation, `the source sent more than ${size} bytes`);
        }
        location = await this.sendChunk(repository, location, chunk, offset, operation);
        offset += chunk.length;
      }
    } catch (error) {
      throw this.networkFailure(error, this.uploadCall(location, repository, operation));
    } finally {
      stream.destroy();
    }
    if (offset !== size)
      throw this.error(repository, operation, `the source sent ${offset} of ${size} bytes`);
    // Closing the upload is a PUT with the digest and no further bytes.
    return this.sendWhole(repository, digest, 0, Buffer.alloc(0), location, operation);
  }

  /**
   * One PATCH of `chunk` at `offset`; returns the next Location. A retriable failure is retried after
   * asking the registry how far the upload got: from the chunk's start when the registry holds
   * exactly the bytes before it, not at all when it holds the chunk too; anything else is thrown, so
   * the whole blob starts again.
   */
  private async sendChunk(
    repository: string,
    location: URL,
    chunk: Buffer,
    offset: number,
    operation: string,
  ): Promise<URL> {
    const end = offset + chunk.length;
    for (let tries = 1; ; tries++) {
      try {
        const response = await this.call({
          ...this.uploadCall(location, repository, operation),
          method: 'PATCH',
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${end - 1}`,
            'content-length': String(chunk.length),
          },
          body: chunk,
        });
        if (response.status !== 202) throw await this.failure(response, repository, operation);
        discard(response);
        return this.uploadLocation(response, repository, operation);
      } catch (error) {
        if (!(error instanceof RegistryError) || !error.retriable || tries >= this.attempts) throw error;
        await this.backOff(tries, error);
        const status = await this.uploadStatus(repository, location, operation).catch(() => undefined);
        if (status?.received === end) return status.location;
        if (status?.received !== offset) throw error;
        location = status.location;
      }
    }
  }

  /** How many bytes an upload session holds (GET on its Location: `Range: 0-<last>`). */
  private async uploadStatus(
    repository: string,
    location: URL,
    operation: string,
  ): Promise<{ received: number; location: URL }> {
    const response = await this.call({ ...this.uploadCall(location, repository, operation), method: 'GET' });
    if (response.status !== 204 && response.status !== 200) {
      throw await this.failure(response, repository, operation);
    }
    discard(response);
    const range = /^(?:bytes=)?0-(\d+)$/.exec(response.headers.get('range') ?? '');
    if (!range) throw this.error(repository, operation, 'the registry did not say how far the upload got');
    const last = Number(range[1]);
    // distribution answers 0-0 for an empty upload as for a one-byte one: take it as empty.
    const received = last === 0 ? 0 : last + 1;
    const next = response.headers.get('location');
    return { received, location: next ? new URL(next, this.baseUrl) : location };
  }

  private uploadCall(location: URL, repository: string, operation: string): Call {
    return {
      method: 'PATCH',
      url: location.toString(),
      repository,
      operation,
      scopes: [repositoryScope(repository, 'pull,push')],
    };
  }

  /** A Buffer body must be the blob it claims to be; checked before anything is sent. */
  private checkBuffer(repository: string, digest: string, size: number, body: BlobBody): void {
    if (!Buffer.isBuffer(body)) return;
    const operation = `push blob ${digest}`;
    if (body.length !== size) {
      throw this.error(repository, operation, `the blob is ${body.length} bytes, not ${size}`);
    }
    const actual = digestOf(body, this.algorithmOf(digest, repository, operation));
    if (actual !== digest) throw this.error(repository, operation, `the bytes given have digest ${actual}`);
  }

  private error(repository: string, operation: string, detail: string): RegistryError {
    return new RegistryError(this.registry, repository, operation, detail);
  }

  /** The algorithm of `digest`, refused unless Ferry can compute it. */
  private algorithmOf(digest: string, repository: string, operation: string): string {
    const algorithm = digest.slice(0, digest.indexOf(':'));
    if (!ALGORITHMS.has(algorithm))
      throw this.error(repository, operation, `unsupported digest algorithm in ${digest}`);
    return algorithm;
  }

  private uploadLocation(response: HttpAnswer, repository: string, operation: string): URL {
    const location = response.headers.get('location');
    if (!location) {
      throw this.error(repository, operation, 'the registry opened an upload without a Location');
    }
    return new URL(location, this.baseUrl);
  }

  /** Runs `attempt` up to `attempts` times while it fails with a retriable error, backing off between. */
  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof RegistryError) || !error.retriable || tries >= this.attempts) throw error;
        await this.backOff(tries, error);
      }
    }
  }

  /** Waits before try `tries + 1`: half to all of base × 2^(tries-1), at least what Retry-After asked. */
  private async backOff(tries: number, error: RegistryError): Promise<void> {
    if (this.baseDelayMs === 0) return;
    const backoff = this.baseDelayMs * 2 ** (tries - 1) * (0.5 + Math.random() / 2);
    const wait = Math.min(Math.max(backoff, error.retryAfterMs), MAX_RETRY_AFTER_MS);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /**
   * One request, answering a 401 challenge once. Network failures become a RegistryError. Calls may
   * run concurrently: a 401 counts as refused credentials only when this request carried them.
   */
  private async call(call: Call): Promise<HttpAnswer> {
    const first = await this.send(call);
    if (first.response.status !== 401) return first.response;
    const header = first.response.headers.get('www-authenticate') ?? '';
    discard(first.response);
    const challenges = parseAuthChallenges(header);
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer');
    const basic = challenges.find((challenge) => challenge.scheme === 'basic');
    if (bearer?.params.realm) {
      this.bearer = { realm: bearer.params.realm, service: bearer.params.service };
      const scopes = [...call.scopes];
      for (const scope of (bearer.params.scope ?? '').split(' ')) {
        if (scope && !scopes.includes(scope)) scopes.push(scope);
      }
      // A token this request did not carry (none, or one another call fetched since) may do.
      const carried = first.authorization?.startsWith('Bearer ') ? first.authorization.slice(7) : undefined;
      const cached = this.tokens.get(scopeKey(call.scopes));
      await this.token(call, scopes, carried !== undefined && carried === cached?.value);
    } else if (basic) {
      if (!this.credentials) {
        throw new RegistryError(
          this.registry,
          call.repository,
          call.operation,
          'the registry asks for credentials (Basic) and none were given',
          { status: 401 },
        );
      }
      if (first.authorization?.startsWith('Basic ')) throw this.refused(call, 401);
      this.basic = true;
    } else {
      throw new RegistryError(
        this.registry,
        call.repository,
        call.operation,
        `HTTP 401 with an unsupported challenge "${header.split(' ')[0]}"`,
        { status: 401 },
      );
    }
    const { response } = await this.send(call);
    if (response.status === 401) {
      discard(response);
      throw this.refused(call, 401);
    }
    return response;
  }

  private refused(call: Call, status: number): RegistryError {
    const detail = this.credentials
      ? `HTTP ${status}: the registry refused the credentials of ${this.credentials.username}`
      : `HTTP ${status}: the registry refused anonymous access; give credentials`;
    return new RegistryError(this.registry, call.repository, call.operation, detail, { status });
  }

  /** One request as it stands; answers the response and the Authorization it carried. */
  private async send(call: Call): Promise<{ response: HttpAnswer; authorization: string | undefined }> {
    const headers: Record<string, string> = { 'user-agent': 'ferry', ...call.headers };
    const authorization = await this.authorization(call);
    if (authorization) headers.authorization = authorization;
    const url = call.url.startsWith('/') ? `${this.baseUrl}${call.url}` : call.url;
    let stream: Readable | undefined;
    let body: Buffer | Readable | undefined;
    if (Buffer.isBuffer(call.body)) body = call.body;
    else if (call.body) {
      body = stream = await call.body();
      // The stream may fail (a digest mismatch) before it is read; the request fails with the error
      // when it is, so the event needs no other listener.
      stream.on('error', ignore);
    }
    try {
      const response = await this.transport({ method: call.method, url, headers, ...(body && { body }) });
      // A body the registry answered before reading to its end (a challenge, a refusal) is not sent
      // again from where it stopped: close it, and with it the download it reads from.
      if (stream && !stream.readableEnded) stream.destroy();
      return { response, authorization };
    } catch (error) {
      stream?.destroy();
      throw this.networkFailure(error, call);
    }
  }

  private async authorization(call: Call): Promise<string | undefined> {
    if (this.basic && this.credentials) return basicAuthorization(this.credentials);
    if (!this.bearer) return undefined;
    return `Bearer ${(await this.token(call, call.scopes, false)).value}`;
  }

  /**
   * The token for the call's scopes: the cached one unless `fresh` or expired, else one fetched from
   * the realm for `scopes`. Calls asking at once share one fetch.
   */
  private token(call: Call, scopes: readonly string[], fresh: boolean): Promise<Token> {
    const key = scopeKey(call.scopes);
    const cached = this.tokens.get(key);
    if (!fresh && cached && cached.expiresAt > Date.now()) return Promise.resolve(cached);
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.fetchToken(call, scopes)
        .then((token) => {
          this.tokens.set(key, token);
          return token;
        })
        .finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(call: Call, scopes: readonly string[]): Promise<Token> {
    const bearer = this.bearer!;
    let realm: URL;
    try {
      realm = new URL(bearer.realm);
    } catch {
      throw this.error(call.repository, call.operation, `the token realm "${bearer.realm}" is not a URL`);
    }
    if (bearer.service) realm.searchParams.set('service', bearer.service);
    for (const scope of scopes) realm.searchParams.append('scope', scope);
    const operation = `${call.operation}: get a token from ${realm.origin}${realm.pathname}`;
    return this.retrying(async () => {
      let text: string;
      try {
        const response = await this.transport({
          method: 'GET',
          url: realm.toString(),
          headers: {
            'user-agent': 'ferry',
            ...(this.credentials && { authorization: basicAuthorization(this.credentials) }),
          },
        });
        if (response.status === 401 || response.status === 403) {
          discard(response);
          throw this.refused({ ...call, operation }, response.status);
        }
        if (response.status !== 200) throw await this.failure(response, call.repository, operation);
        text = (await readBody(response)).toString('utf8');
      } catch (error) {
        throw this.networkFailure(error, { ...call, operation });
      }
      const answer = parseJson(text) as {
        token?: unknown;
        access_token?: unknown;
        expires_in?: unknown;
      };
      const value = typeof answer.token === 'string' ? answer.token : answer.access_token;
      if (typeof value !== 'string' || value === '') {
        throw this.error(call.repository, operation, 'the token service answered without a token');
      }
      const lifetime = typeof answer.expires_in === 'number' ? answer.expires_in : TOKEN_LIFETIME_SECONDS;
      return { value, expiresAt: Date.now() + Math.max(lifetime - 10, 1) * 1000 };
    });
  }

  private networkFailure(error: unknown, call: Call): RegistryError {
    // fetch wraps what went wrong (a refused connection, a failing body stream) as its cause, and
    // a body cut mid-stream is a TypeError('terminated') caused by the socket's error: walk down.
    const causes: unknown[] = [];
    // Errors may come from another realm (a test's VM context): look at fields, not instanceof.
    for (let current = error; current !== undefined && causes.length < 8; ) {
      if (current instanceof RegistryError) return current;
      causes.push(current);
      current =
        typeof current === 'object' && current !== null && 'cause' in current ? current.cause : undefined;
    }
    const code = causes.map(errorCode).find((found) => found !== undefined);
    const innermost = causes[causes.length - 1];
    const reason =
      typeof innermost === 'object' && innermost !== null && 'message' in innermost
        ? String(innermost.message)
        : String(innermost);
    const detail = code
      ? `cannot reach ${this.baseUrl} (${code})`
      : `request to ${this.baseUrl} failed: ${reason}`;
    return new RegistryError(this.registry, call.repository, call.operation, detail, {
      retriable: code !== undefined && RETRIABLE_CODES.has(code),
      cause: error,
    });
  }

  private async failure(response: HttpAnswer, repository: string, operation: string): Promise<RegistryError> {
    const status = response.status;
    const text = await readBody(response)
      .then((bytes) => bytes.toString('utf8'))
      .catch(() => '');
    let detail = `HTTP ${status}`;
    try {
      const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
      const errors = (parsed.errors ?? []).map((entry) =>
        [entry.code, entry.message].filter((part) => typeof part === 'string' && part !== '').join(': '),
      );
      if (errors.length > 0) detail += ` ${errors.join('; ')}`;
    } catch {
      const line = text.trim().split('\n')[0] ?? '';
      if (line !== '') detail += ` ${line}`;
    }
    if (detail.length > 300) detail = `${detail.slice(0, 297)}...`;
    return new RegistryError(this.registry, repository, operation, detail, {
      status,
      retriable: status === 429 || status >= 500,
      retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
    });
  }
}

/** Retry-After in ms: delay-seconds or an HTTP date; 0 when absent or unreadable. */
function retryAfterMs(header: string | null): number {
  if (header === null || header.trim() === '') return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? 0 : Math.max(0, date - Date.now());
}

/** The stream's bytes regrouped into buffers of `size` bytes (the last one shorter). */
async function* chunksOf(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const data of stream) {
    let piece: Buffer = Buffer.isBuffer(data) ? data : Buffer.from(data as Uint8Array);
    while (length + piece.length >= size) {
      const take = size - length;
      parts.push(piece.subarray(0, take));
      yield Buffer.concat(parts, size);
      piece = piece.subarray(take);
      parts = [];
      length = 0;
    }
    if (piece.length > 0) {
      parts.push(piece);
      length += piece.length;
    }
  }
  if (length > 0) yield Buffer.concat(parts, length);
}

function ignore(): void {
  // an error event whose error is seen elsewhere
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

const ALGORITHMS = new Set(['sha256', 'sha512']);

function digestOf(bytes: Buffer, algorithm: string): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

const GENERIC_TYPES = new Set(['', 'application/json', 'text/plain', 'application/octet-stream']);

function manifestMediaType(response: HttpAnswer, bytes: Buffer): string {
  const served = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (!GENERIC_TYPES.has(served)) return served;
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    // not JSON: fall through to what the registry said
  }
  return served || 'application/octet-stream';
}

/**
 * Passes bytes through, failing when they run past `size` or do not hash to the expected digest.
 * The last chunk is held back until the digest is checked, so whoever reads the stream (an upload)
 * never sees a whole blob of the wrong digest.
 */
class DigestVerifier extends Transform {
  private readonly hash: Hash;
  private received = 0;
  private held: Buffer | undefined;
  constructor(
    private readonly expected: string,
    private readonly algorithm: string,
    private readonly size: number | undefined,
    private readonly mismatch: (detail: string) => Error,
  ) {
    super();
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.size !== undefined && this.received > this.size) {
      callback(this.mismatch(`the registry served more than the ${this.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    if (this.size !== undefined && this.received !== this.size) {
      callback(this.mismatch(`the registry served ${this.received} of the ${this.size} bytes`));
      return;
    }
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expected) {
      callback(this.mismatch(`the registry served bytes of another digest (${actual})`));
      return;
    }
    callback(null, this.held);
  }
}
