/**
 * A client for one registry over the OCI distribution API, on fetch. It answers the registry's 401
 * challenge (Basic, or a Bearer token fetched from the realm and cached per scope), retries
 * idempotent calls on 5xx, 429 and dropped connections, streams blobs both ways and checks every
 * digest it is given against the bytes.
 */

import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { MANIFEST_TYPES } from './media-types';
import { DOCKER_HUB, isDigest } from './reference';

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface RetryOptions {
  /** Tries in all, the first included. @default 3 */
  readonly attempts?: number;
  /** Wait before the second try, doubled before each later one; 0 retries at once. @default 250 */
  readonly baseDelayMs?: number;
}

export interface RegistryClientOptions {
  /** host[:port] as references name it: `123456789012.dkr.ecr.eu-west-1.amazonaws.com`, `127.0.0.1:5000`. */
  readonly registry: string;
  /** Speak plain http instead of https. @default false */
  readonly insecure?: boolean;
  /** Sent only when the registry asks for them (Basic), or to its token realm (Bearer). @default anonymous */
  readonly credentials?: RegistryCredentials;
  /** @default the global fetch */
  readonly fetch?: typeof fetch;
  /** @default 3 attempts, 250 ms then 500 ms apart */
  readonly retry?: RetryOptions;
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

interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
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
  private readonly fetcher: typeof fetch;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  /** Set once the registry answered a Basic challenge. */
  private basic = false;
  /** Set once the registry answered a Bearer challenge: tokens are fetched from here. */
  private bearer: { readonly realm: string; readonly service: string | undefined } | undefined;
  private readonly tokens = new Map<string, Token>();

  constructor(options: RegistryClientOptions) {
    if (!/^[^\s/]+$/.test(options.registry)) {
      throw new Error(`registry "${options.registry}" must be a host[:port], without scheme or path`);
    }
    this.registry = options.registry;
    this.insecure = options.insecure ?? false;
    const host = options.registry === DOCKER_HUB ? 'registry-1.docker.io' : options.registry;
    this.baseUrl = `${this.insecure ? 'http' : 'https'}://${host}`;
    this.credentials = options.credentials;
    this.fetcher = options.fetch ?? fetch;
    this.attempts = Math.max(1, options.retry?.attempts ?? 3);
    this.baseDelayMs = Math.max(0, options.retry?.baseDelayMs ?? 250);
  }

  /** Fetches a manifest by tag or digest; a digest reference is checked against the bytes. */
  async getManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = MANIFEST_TYPES,
  ): Promise<Manifest> {
    const operation = `get manifest ${reference}`;
    return this.retrying(async () => {
      const response = await this.call({
        method: 'GET',
        url: `/v2/${repository}/manifests/${reference}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull')],
        headers: { accept: accept.join(', ') },
      });
      if (response.status !== 200) throw await this.failure(response, repository, operation);
      const bytes = Buffer.from(await response.arrayBuffer());
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

  /** Stores a manifest under a tag or its digest; returns its sha256 digest. */
  async putManifest(
    repository: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
  ): Promise<string> {
    const digest = sha256(bytes);
    const operation = `put manifest ${reference}`;
    return this.retrying(async () => {
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
      await response.body?.cancel();
      const stored = response.headers.get('docker-content-digest');
      if (stored?.startsWith('sha256:') && stored !== digest) {
        throw this.error(repository, operation, `the registry stored ${stored}, expected ${digest}`);
      }
      return digest;
    });
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
      if (response.status === 200) return true;
      if (response.status === 404) return false;
      throw await this.failure(response, repository, operation);
    });
  }

  /** Streams a blob; the stream fails at its end if the bytes do not match the digest. */
  async getBlob(repository: string, digest: string): Promise<Readable> {
    const operation = `get blob ${digest}`;
    const algorithm = this.algorithmOf(digest, repository, operation);
    const response = await this.retrying(async () => {
      const response = await this.call({
        method: 'GET',
        url: `/v2/${repository}/blobs/${digest}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull')],
      });
      if (response.status !== 200 || !response.body)
        throw await this.failure(response, repository, operation);
      return response;
    });
    const body = Readable.fromWeb(response.body as Parameters<typeof Readable.fromWeb>[0]);
    const verifier = new DigestVerifier(digest, algorithm, () =>
      this.error(repository, operation, 'the registry served bytes of another digest'),
    );
    body.on('error', (error) => verifier.destroy(error));
    return body.pipe(verifier);
  }

  /**
   * Uploads a blob (POST, then one monolithic PUT with `?digest=`), streaming a stream body. Returns
   * false without uploading when the repository already holds it.
   */
  async pushBlob(repository: string, digest: string, size: number, body: BlobBody): Promise<boolean> {
    const operation = `push blob ${digest}`;
    if (Buffer.isBuffer(body)) {
      if (body.length !== size) {
        throw this.error(repository, operation, `the blob is ${body.length} bytes, not ${size}`);
      }
      const actual = digestOf(body, this.algorithmOf(digest, repository, operation));
      if (actual !== digest) throw this.error(repository, operation, `the bytes given have digest ${actual}`);
    }
    if (await this.hasBlob(repository, digest)) return false;
    const scopes = [repositoryScope(repository, 'pull,push')];
    await this.retrying(async () => {
      const start = await this.call({
        method: 'POST',
        url: `/v2/${repository}/blobs/uploads/`,
        repository,
        operation,
        scopes,
      });
      if (start.status !== 202) throw await this.failure(start, repository, operation);
      await start.body?.cancel();
      const location = this.uploadLocation(start, repository, operation);
      location.searchParams.set('digest', digest);
      const put = await this.call({
        method: 'PUT',
        url: location.toString(),
        repository,
        operation,
        scopes,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body,
      });
      if (put.status !== 201) throw await this.failure(put, repository, operation);
      await put.body?.cancel();
      const stored = put.headers.get('docker-content-digest');
      if (stored && stored !== digest) {
        throw this.error(repository, operation, `the registry stored ${stored}`);
      }
    });
    return true;
  }

  /** Asks the registry to link a blob from another of its repositories; false when it will not. */
  async mountBlob(repository: string, digest: string, fromRepository: string): Promise<boolean> {
    const operation = `mount blob ${digest} from ${fromRepository}`;
    const query = new URLSearchParams({ mount: digest, from: fromRepository });
    return this.retrying(async () => {
      const response = await this.call({
        method: 'POST',
        url: `/v2/${repository}/blobs/uploads/?${query}`,
        repository,
        operation,
        scopes: [repositoryScope(repository, 'pull,push'), repositoryScope(fromRepository, 'pull')],
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status === 201) return true;
      if (response.status === 202) {
        // The registry opened an upload instead: close it, the caller uploads the blob itself.
        const location = response.headers.get('location');
        if (location) {
          await this.call({
            method: 'DELETE',
            url: new URL(location, this.baseUrl).toString(),
            repository,
            operation,
            scopes: [repositoryScope(repository, 'pull,push')],
          })
            .then((cancelled) => cancelled.body?.cancel())
            .catch(() => undefined);
        }
        return false;
      }
      throw await this.failure(response, repository, operation);
    });
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

  private uploadLocation(response: Response, repository: string, operation: string): URL {
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
        const backoff = this.baseDelayMs * 2 ** (tries - 1);
        const wait =
          this.baseDelayMs === 0 ? 0 : Math.min(Math.max(backoff, error.retryAfterMs), MAX_RETRY_AFTER_MS);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** One request, answering a 401 challenge once. Network failures become a RegistryError. */
  private async call(call: Call): Promise<Response> {
    let response = await this.send(call);
    if (response.status !== 401) return response;
    const header = response.headers.get('www-authenticate') ?? '';
    await response.body?.cancel().catch(() => undefined);
    const challenges = parseAuthChallenges(header);
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer');
    const basic = challenges.find((challenge) => challenge.scheme === 'basic');
    if (bearer?.params.realm) {
      this.bearer = { realm: bearer.params.realm, service: bearer.params.service };
      const scopes = [...call.scopes];
      for (const scope of (bearer.params.scope ?? '').split(' ')) {
        if (scope && !scopes.includes(scope)) scopes.push(scope);
      }
      this.tokens.set(scopeKey(call.scopes), await this.fetchToken(call, scopes));
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
      if (this.basic) throw this.refused(call, 401);
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
    response = await this.send(call);
    if (response.status === 401) {
      await response.body?.cancel().catch(() => undefined);
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

  private async send(call: Call): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': 'ferry', ...call.headers };
    const authorization = await this.authorization(call);
    if (authorization) headers.authorization = authorization;
    const url = call.url.startsWith('/') ? `${this.baseUrl}${call.url}` : call.url;
    let stream: Readable | undefined;
    let body: Buffer | Readable | undefined;
    if (Buffer.isBuffer(call.body)) body = call.body;
    else if (call.body) body = stream = await call.body();
    try {
      const response = await this.fetcher(url, {
        method: call.method,
        headers,
        ...(body !== undefined && { body, duplex: 'half' as const }),
      });
      // A challenged upload is sent again from a fresh stream: close this one.
      if (response.status === 401) stream?.destroy();
      return response;
    } catch (error) {
      stream?.destroy();
      throw this.networkFailure(error, call);
    }
  }

  private async authorization(call: Call): Promise<string | undefined> {
    if (this.basic && this.credentials) return basicAuthorization(this.credentials);
    if (!this.bearer) return undefined;
    const key = scopeKey(call.scopes);
    let token = this.tokens.get(key);
    if (!token || token.expiresAt <= Date.now()) {
      token = await this.fetchToken(call, call.scopes);
      this.tokens.set(key, token);
    }
    return `Bearer ${token.value}`;
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
      let response: Response;
      try {
        response = await this.fetcher(realm, {
          headers: this.credentials ? { authorization: basicAuthorization(this.credentials) } : {},
        });
      } catch (error) {
        throw this.networkFailure(error, { ...call, operation });
      }
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel().catch(() => undefined);
        throw this.refused({ ...call, operation }, response.status);
      }
      if (response.status !== 200) throw await this.failure(response, call.repository, operation);
      const answer = (await response.json().catch(() => ({}))) as {
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
    if (error instanceof RegistryError) return error;
    // fetch wraps what went wrong (a refused connection, a failing body stream) as its cause.
    const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
    if (cause instanceof RegistryError) return cause;
    const code = errorCode(cause) ?? errorCode(error);
    const reason = cause instanceof Error ? cause.message : String(cause);
    const detail = code
      ? `cannot reach ${this.baseUrl} (${code})`
      : `request to ${this.baseUrl} failed: ${reason}`;
    return new RegistryError(this.registry, call.repository, call.operation, detail, {
      retriable: code !== undefined && RETRIABLE_CODES.has(code),
      cause: error,
    });
  }

  private async failure(response: Response, repository: string, operation: string): Promise<RegistryError> {
    const status = response.status;
    const text = response.bodyUsed ? '' : await response.text().catch(() => '');
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
    const retryAfter = Number(response.headers.get('retry-after'));
    return new RegistryError(this.registry, repository, operation, detail, {
      status,
      retriable: status === 429 || status >= 500,
      retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 0,
    });
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

function manifestMediaType(response: Response, bytes: Buffer): string {
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

/** Passes bytes through, failing at the end when they do not hash to the expected digest. */
class DigestVerifier extends Transform {
  private readonly hash: Hash;
  constructor(
    private readonly expected: string,
    private readonly algorithm: string,
    private readonly mismatch: () => Error,
  ) {
    super();
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    callback(actual === this.expected ? null : this.mismatch());
  }
}
