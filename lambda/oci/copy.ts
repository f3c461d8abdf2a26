/**
 * Copies an image or artifact between registries exactly: manifest bytes are put unchanged, so the
 * digest is the same on both sides. An index (or Docker manifest list) brings every platform's
 * manifest with it. Blobs are streamed from source to destination, several at once; blobs the
 * destination holds are skipped (HEAD), and within one registry they are mounted, not sent.
 *
 * The work splits into units so a workflow can fan out and no task outlives a Lambda's time limit:
 * `planCopy` lists the manifests and blobs, `copyBlob` copies one blob, `copyManifests` puts the
 * manifests (children first, the top one last, tagged). `copyImage` does all of it in one call.
 */

import type { ManifestDescription } from './artifact';
import type { Manifest, RegistryClient, UploadOptions } from './client';
import {
  isImageManifest,
  isIndex,
  isNonDistributable,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
} from './media-types';
import { isDigest } from './reference';

/** The source or destination cannot be copied as it is; says which manifest and why. */
export class CopyError extends Error {
  override readonly name = 'CopyError';
}

/** A blob to copy, as a manifest names it. */
export interface BlobDescriptor {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

/** Everything one copy moves: JSON-safe, small, for a workflow to fan out on. */
export interface CopyPlan {
  /** Every manifest, each once, children before the index naming them: the top manifest is last. */
  readonly manifests: ManifestDescription[];
  /** Every distributable blob (configs and layers), each once. */
  readonly blobs: BlobDescriptor[];
}

/** `copied`: Ferry sent the bytes; `skipped`: the destination held the blob; `mounted`: linked there. */
export type BlobOutcome = 'copied' | 'skipped' | 'mounted';

export interface CopiedBlob {
  readonly digest: string;
  readonly size: number;
  readonly outcome: BlobOutcome;
  /** True when Ferry sent the blob's bytes (not skipped, not mounted). */
  readonly copied: boolean;
  /** Bytes sent: the blob's size when copied, else 0. */
  readonly bytesCopied: number;
}

export interface CopyResult extends ManifestDescription {
  readonly blobsCopied: number;
  readonly blobsSkipped: number;
  readonly blobsMounted: number;
  /** Blob bytes sent to the destination (manifests not counted). */
  readonly bytesCopied: number;
  readonly durationMs: number;
}

export interface CopyBlobOptions {
  /** Chunked or monolithic upload. @default chunked above the destination client's threshold */
  readonly chunked?: boolean;
  /**
   * Try a cross-repository mount when source and destination are the same registry (same host and
   * scheme). @default true
   */
  readonly mount?: boolean;
}

export interface CopyOptions extends CopyBlobOptions {
  /** Blobs in flight at once. @default 6 */
  readonly concurrency?: number;
}

interface DescriptorJson {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  urls?: unknown;
}

interface ManifestJson {
  mediaType?: unknown;
  config?: DescriptorJson;
  layers?: DescriptorJson[];
  manifests?: DescriptorJson[];
}

/** A plan and the manifest bytes read while making it, in the plan's order. */
interface Walk {
  readonly plan: CopyPlan;
  readonly manifests: readonly Manifest[];
}

const MAX_DEPTH = 4;
const DEFAULT_CONCURRENCY = 6;

/**
 * Reads `sourceRepository:sourceReference` and every manifest under it; lists the manifests and
 * blobs a copy moves. Pass the top manifest's digest (the last of `manifests`) to `copyManifests`
 * so a tag moved meanwhile cannot change what is copied.
 */
export async function planCopy(
  source: RegistryClient,
  sourceRepository: string,
  sourceReference: string,
): Promise<CopyPlan> {
  return (await walk(source, sourceRepository, sourceReference)).plan;
}

/**
 * Makes one blob present in the destination: skipped when it is there (HEAD), mounted when source
 * and destination are one registry and it agrees, else streamed from the source (its digest and
 * size checked on the way) and uploaded.
 */
export async function copyBlob(
  source: RegistryClient,
  sourceRepository: string,
  dest: RegistryClient,
  destRepository: string,
  blob: BlobDescriptor,
  options: CopyBlobOptions = {},
): Promise<CopiedBlob> {
  const { digest, size } = blob;
  if (await dest.hasBlob(destRepository, digest)) {
    return { digest, size, outcome: 'skipped', copied: false, bytesCopied: 0 };
  }
  const mount = (options.mount ?? true) && sameRegistry(source, dest) && sourceRepository !== destRepository;
  const upload: UploadOptions = {
    ...(mount && { mountFrom: sourceRepository }),
    ...(options.chunked !== undefined && { chunked: options.chunked }),
  };
  const outcome = await dest.uploadBlob(
    destRepository,
    digest,
    size,
    () => source.getBlob(sourceRepository, digest, size),
    upload,
  );
  return outcome === 'mounted'
    ? { digest, size, outcome: 'mounted', copied: false, bytesCopied: 0 }
    : { digest, size, outcome: 'copied', copied: true, bytesCopied: size };
}

/**
 * Puts every manifest under `sourceReference` into the destination, children by digest first, then
 * the top one under `destTag`. The blobs must be there already (`copyBlob` for each of the plan's).
 * Returns the top manifest's (unchanged) digest, size and media type.
 */
export async function copyManifests(
  source: RegistryClient,
  sourceRepository: string,
  sourceReference: string,
  dest: RegistryClient,
  destRepository: string,
  destTag: string,
): Promise<ManifestDescription> {
  const walked = await walk(source, sourceRepository, sourceReference);
  return putManifests(walked, dest, destRepository, destTag);
}

/**
 * Copies `sourceRepository:sourceReference` to `destRepository:destTag`: plans, copies the blobs
 * (`concurrency` at once, largest first), then puts the manifests. A failed blob stops new ones
 * from starting; the ones in flight finish, so a second run has less to do. The digest is the
 * source's, unchanged.
 */
export async function copyImage(
  source: RegistryClient,
  sourceRepository: string,
  sourceReference: string,
  dest: RegistryClient,
  destRepository: string,
  destTag: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const started = performance.now();
  const walked = await walk(source, sourceRepository, sourceReference);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
  // Largest first: the longest transfers start at once and small ones fill in around them.
  const largestFirst = [...walked.plan.blobs].sort((a, b) => b.size - a.size);
  const blobs = await inPool(largestFirst, concurrency, (blob) =>
    copyBlob(source, sourceRepository, dest, destRepository, blob, options),
  );
  const top = await putManifests(walked, dest, destRepository, destTag);
  const count = (outcome: BlobOutcome) => blobs.filter((blob) => blob.outcome === outcome).length;
  return {
    ...top,
    blobsCopied: count('copied'),
    blobsSkipped: count('skipped'),
    blobsMounted: count('mounted'),
    bytesCopied: blobs.reduce((sum, blob) => sum + blob.bytesCopied, 0),
    durationMs: Math.round(performance.now() - started),
  };
}

/** The same registry: a mount can link blobs between its repositories. */
function sameRegistry(source: RegistryClient, dest: RegistryClient): boolean {
  return source.registry === dest.registry && source.insecure === dest.insecure;
}

async function putManifests(
  walked: Walk,
  dest: RegistryClient,
  destRepository: string,
  destTag: string,
): Promise<ManifestDescription> {
  const { manifests } = walked.plan;
  for (const [i, description] of manifests.entries()) {
    const top = i === manifests.length - 1;
    const { bytes } = walked.manifests[i]!;
    const reference = top ? destTag : description.digest;
    const stored = await dest
      .putManifest(destRepository, reference, bytes, description.mediaType)
      .catch(async (error: unknown) => {
        // A registry with immutable tags refuses to put a tag again, even to the same manifest.
        if (!top) throw error;
        const found = await dest.headManifest(destRepository, destTag).catch(() => undefined);
        if (found?.digest !== description.digest) throw error;
        return found.digest;
      });
    if (stored !== description.digest) {
      throw new CopyError(
        `${dest.registry}/${destRepository}:${reference} was stored as ${stored}, not ${description.digest}`,
      );
    }
  }
  return manifests[manifests.length - 1]!;
}

/** Runs `work` on every item, at most `limit` at once; after a failure starts no more, then throws it. */
async function inPool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}

/** Fetches the top manifest and everything under it; children come before their index. */
async function walk(source: RegistryClient, repository: string, reference: string): Promise<Walk> {
  const manifests: Manifest[] = [];
  const descriptions: ManifestDescription[] = [];
  const blobs = new Map<string, BlobDescriptor>();
  const visit = async (manifest: Manifest, depth: number): Promise<void> => {
    const where = `${source.registry}/${repository}@${manifest.digest}`;
    let parsed: ManifestJson;
    try {
      parsed = JSON.parse(manifest.bytes.toString('utf8')) as ManifestJson;
    } catch {
      throw new CopyError(`${where} is not a JSON manifest`);
    }
    if (typeof parsed !== 'object' || parsed === null) throw new CopyError(`${where} is not a JSON manifest`);
    const mediaType = mediaTypeOf(manifest, parsed);
    if (isIndex(mediaType)) {
      if (depth >= MAX_DEPTH) throw new CopyError(`${where} nests indexes more than ${MAX_DEPTH} deep`);
      for (const entry of list(parsed.manifests, 'manifests', where)) {
        const child = descriptor(entry, where);
        if (descriptions.some((seen) => seen.digest === child.digest)) continue;
        const childManifest = await source.getManifest(repository, child.digest);
        if (childManifest.bytes.length !== child.size) {
          throw new CopyError(
            `${where} names ${child.digest} with size ${child.size}; the registry served ` +
              `${childManifest.bytes.length} bytes`,
          );
        }
        await visit(childManifest, depth + 1);
      }
    } else if (isImageManifest(mediaType)) {
      if (parsed.config === undefined) throw new CopyError(`${where} has no config`);
      for (const entry of [parsed.config, ...list(parsed.layers, 'layers', where)]) {
        const blob = descriptor(entry, where);
        if (isNonDistributable(blob.mediaType) && Array.isArray(entry.urls) && entry.urls.length > 0)
          continue;
        const known = blobs.get(blob.digest);
        if (known && known.size !== blob.size) {
          throw new CopyError(`${where} names ${blob.digest} with sizes ${known.size} and ${blob.size}`);
        }
        if (!known) blobs.set(blob.digest, blob);
      }
    } else {
      throw new CopyError(`${where} has media type ${mediaType}, which Ferry does not copy`);
    }
    manifests.push(manifest);
    descriptions.push({ digest: manifest.digest, size: manifest.bytes.length, mediaType });
  };
  await visit(await source.getManifest(repository, reference), 0);
  return { plan: { manifests: descriptions, blobs: [...blobs.values()] }, manifests };
}

/** The served media type, or, when the registry served a generic one, what the JSON's shape says. */
function mediaTypeOf(manifest: Manifest, parsed: ManifestJson): string {
  if (isIndex(manifest.mediaType) || isImageManifest(manifest.mediaType)) return manifest.mediaType;
  if (typeof parsed.mediaType === 'string' && parsed.mediaType !== '') return parsed.mediaType;
  if (Array.isArray(parsed.manifests)) return OCI_IMAGE_INDEX;
  if (parsed.config !== undefined && Array.isArray(parsed.layers)) return OCI_IMAGE_MANIFEST;
  return manifest.mediaType;
}

function list(value: DescriptorJson[] | undefined, field: string, where: string): DescriptorJson[] {
  if (!Array.isArray(value)) throw new CopyError(`${where} has no ${field} list`);
  return value;
}

function descriptor(entry: DescriptorJson, where: string): BlobDescriptor {
  if (typeof entry !== 'object' || entry === null) {
    throw new CopyError(`${where} names a descriptor that is not an object`);
  }
  const { mediaType, digest, size } = entry;
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new CopyError(`${where} names a descriptor with an invalid digest ${JSON.stringify(digest)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new CopyError(`${where} names ${digest} with an invalid size ${JSON.stringify(size)}`);
  }
  return { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
}
