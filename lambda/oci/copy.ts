/**
 * Copies an image or artifact between registries exactly: the manifest bytes are put unchanged, so
 * the digest is the same on both sides. An index (or Docker manifest list) brings every platform's
 * manifest with it; every blob is streamed from source to destination, and blobs the destination
 * already holds are skipped. Simple and sequential; correctness first.
 */

import type { ManifestDescription } from './artifact';
import type { Manifest, RegistryClient } from './client';
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

interface Copy {
  readonly source: RegistryClient;
  readonly sourceRepository: string;
  readonly dest: RegistryClient;
  readonly destRepository: string;
  /** Blobs already made present in the destination during this copy. */
  readonly copied: Set<string>;
}

const MAX_DEPTH = 4;

/** Copies `sourceRepository:sourceReference` to `destRepository:destTag`; returns the (unchanged) digest. */
export async function copyImage(
  source: RegistryClient,
  sourceRepository: string,
  sourceReference: string,
  dest: RegistryClient,
  destRepository: string,
  destTag: string,
): Promise<ManifestDescription> {
  const copy: Copy = { source, sourceRepository, dest, destRepository, copied: new Set() };
  const manifest = await source.getManifest(sourceRepository, sourceReference);
  const mediaType = await copyContent(copy, manifest, 0);
  await dest.putManifest(destRepository, destTag, manifest.bytes, mediaType);
  return { digest: manifest.digest, size: manifest.bytes.length, mediaType };
}

/** Makes everything `manifest` names present in the destination; returns the manifest's media type. */
async function copyContent(copy: Copy, manifest: Manifest, depth: number): Promise<string> {
  const where = `${copy.source.registry}/${copy.sourceRepository}@${manifest.digest}`;
  let parsed: ManifestJson;
  try {
    parsed = JSON.parse(manifest.bytes.toString('utf8')) as ManifestJson;
  } catch {
    throw new CopyError(`${where} is not a JSON manifest`);
  }
  const mediaType = mediaTypeOf(manifest, parsed);
  if (isIndex(mediaType)) {
    if (depth >= MAX_DEPTH) throw new CopyError(`${where} nests indexes more than ${MAX_DEPTH} deep`);
    for (const entry of list(parsed.manifests, 'manifests', where)) {
      const child = descriptor(entry, where);
      const childManifest = await copy.source.getManifest(copy.sourceRepository, child.digest);
      const childType = await copyContent(copy, childManifest, depth + 1);
      await copy.dest.putManifest(copy.destRepository, child.digest, childManifest.bytes, childType);
    }
    return mediaType;
  }
  if (isImageManifest(mediaType)) {
    if (parsed.config === undefined) throw new CopyError(`${where} has no config`);
    const blobs = [parsed.config, ...list(parsed.layers, 'layers', where)];
    for (const entry of blobs) {
      const blob = descriptor(entry, where);
      if (isNonDistributable(blob.mediaType) && Array.isArray(entry.urls) && entry.urls.length > 0) continue;
      await copyBlob(copy, blob.digest, blob.size);
    }
    return mediaType;
  }
  throw new CopyError(`${where} has media type ${mediaType}, which Ferry does not copy`);
}

async function copyBlob(copy: Copy, digest: string, size: number): Promise<void> {
  if (copy.copied.has(digest)) return;
  await copy.dest.pushBlob(copy.destRepository, digest, size, () =>
    copy.source.getBlob(copy.sourceRepository, digest),
  );
  copy.copied.add(digest);
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

function descriptor(
  entry: DescriptorJson,
  where: string,
): { mediaType: string; digest: string; size: number } {
  const { mediaType, digest, size } = entry;
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new CopyError(`${where} names a descriptor with an invalid digest ${JSON.stringify(digest)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new CopyError(`${where} names ${digest} with an invalid size ${JSON.stringify(size)}`);
  }
  return { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
}
