/**
 * Reproducible tar.gz of a directory: the same tree always gives the same bytes, whoever packs it
 * and whenever. Entries are sorted, directories included, timestamps fixed (0, or
 * SOURCE_DATE_EPOCH), owners 0 with empty names, modes 0644/0755 after the executable bit, and the
 * gzip header fixed. Symbolic links are refused rather than followed; `.git` is never packed.
 */

import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

/** The directory cannot be packed as it is; names the file and what to do. */
export class PackagingError extends Error {
  override readonly name = 'PackagingError';
}

export interface TarOptions {
  /** Put every entry under this directory (`mychart` gives `mychart/Chart.yaml`). @default none */
  readonly prefix?: string;
  /** Timestamp of every entry, seconds since the epoch. @default SOURCE_DATE_EPOCH, else 0 */
  readonly mtime?: number;
  /** Leaves out a path (relative, `/`-separated) and, for a directory, everything below it. @default none */
  readonly exclude?: (path: string, isDirectory: boolean) => boolean;
}

export interface PackedDirectory {
  /** The gzipped tar. */
  readonly bytes: Buffer;
  /** Relative paths of the regular files packed (without the prefix), sorted. */
  readonly files: readonly string[];
}

export interface TarEntry {
  readonly name: string;
  readonly type: 'file' | 'directory';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  /** Seconds since the epoch. */
  readonly mtime: number;
  readonly content: Buffer;
}

interface Found {
  readonly path: string;
  readonly absolute: string;
  readonly directory: boolean;
  readonly executable: boolean;
}

/** Names never packed: version control data. */
const ALWAYS_EXCLUDED = new Set(['.git']);
/** The largest timestamp a ustar header (as tar-stream writes it) holds. */
const MAX_MTIME = 2 ** 31 - 1;

/** Packs `dir` into a reproducible tar.gz. */
export async function packDirectory(dir: string, options: TarOptions = {}): Promise<PackedDirectory> {
  const found = walk(dir, options);
  const files = found.filter((entry) => !entry.directory).map((entry) => entry.path);
  return { bytes: deterministicGzip(await tarOf(found, options)), files };
}

/** The uncompressed reproducible tar of `dir`. */
export async function tarDirectory(dir: string, options: TarOptions = {}): Promise<Buffer> {
  return tarOf(walk(dir, options), options);
}

async function tarOf(found: readonly Found[], options: TarOptions): Promise<Buffer> {
  const mtime = new Date((options.mtime ?? sourceDateEpoch()) * 1000);
  const prefix = normalisePrefix(options.prefix);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const finished = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const common = { uid: 0, gid: 0, uname: '', gname: '', mtime };
  const add = (header: Partial<tar.Header> & Pick<tar.Header, 'name'>, content?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (content) pack.entry(header, content, done);
      else pack.entry(header, done);
    });
  if (prefix) await add({ ...common, name: `${prefix}/`, type: 'directory', mode: 0o755 });
  for (const entry of found) {
    const name = prefix ? `${prefix}/${entry.path}` : entry.path;
    if (entry.directory) {
      await add({ ...common, name: `${name}/`, type: 'directory', mode: 0o755 });
    } else {
      const content = readFileSync(entry.absolute);
      await add(
        { ...common, name, type: 'file', mode: entry.executable ? 0o755 : 0o644, size: content.length },
        content,
      );
    }
  }
  pack.finalize();
  await finished;
  return Buffer.concat(chunks);
}

/** gzip with a fixed header (no timestamp, no name, OS "unknown"): the bytes depend on the input only. */
export function deterministicGzip(bytes: Buffer): Buffer {
  const gzipped = gzipSync(bytes, { level: 9 });
  gzipped.writeUInt32LE(0, 4); // MTIME
  gzipped[8] = 0; // XFL
  gzipped[9] = 255; // OS: unknown
  return gzipped;
}

/** Reads a tar.gz back: every entry with its header fields and content, in archive order. */
export async function readTarGz(bytes: Buffer): Promise<TarEntry[]> {
  const extract = tar.extract();
  const entries: TarEntry[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const header = entry.header;
      entries.push({
        name: header.name,
        type: header.type === 'directory' ? 'directory' : 'file',
        mode: header.mode ?? 0,
        uid: header.uid ?? 0,
        gid: header.gid ?? 0,
        uname: header.uname ?? '',
        gname: header.gname ?? '',
        mtime: header.mtime ? Math.floor(header.mtime.getTime() / 1000) : 0,
        content: Buffer.concat(chunks),
      });
    }
  })();
  Readable.from([gunzipSync(bytes)]).pipe(extract);
  await reading;
  return entries;
}

/** SOURCE_DATE_EPOCH when set (reproducible-builds.org), else 0. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return 0;
  const seconds = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(seconds) || seconds > MAX_MTIME) {
    throw new PackagingError(
      `SOURCE_DATE_EPOCH "${value}" is not a whole number of seconds up to ${MAX_MTIME}`,
    );
  }
  return seconds;
}

function normalisePrefix(prefix: string | undefined): string | undefined {
  if (prefix === undefined) return undefined;
  const trimmed = prefix.replace(/\/+$/, '');
  if (
    trimmed === '' ||
    trimmed.startsWith('/') ||
    trimmed.split('/').some((part) => part === '..' || part === '.' || part === '')
  ) {
    throw new PackagingError(`tar prefix "${prefix}" must be a relative path without "." or ".." parts`);
  }
  return trimmed;
}

/** Every directory and regular file below `dir`, depth first, each directory's children sorted by name. */
function walk(dir: string, options: TarOptions): Found[] {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(dir);
  } catch {
    throw new PackagingError(`${dir} does not exist`);
  }
  if (!stat.isDirectory()) throw new PackagingError(`${dir} is not a directory`);
  const found: Found[] = [];
  const visit = (absoluteDir: string, relativeDir: string) => {
    const names = readdirSync(absoluteDir).sort(byCodeUnit);
    for (const name of names) {
      if (ALWAYS_EXCLUDED.has(name)) continue;
      const absolute = join(absoluteDir, name);
      const path = relativeDir ? `${relativeDir}/${name}` : name;
      const entry = lstatSync(absolute);
      if (entry.isSymbolicLink()) {
        throw new PackagingError(
          `${absolute} is a symbolic link; packages hold only regular files and directories ` +
            '(copy the file it points to instead)',
        );
      }
      if (entry.isDirectory()) {
        if (options.exclude?.(path, true)) continue;
        found.push({ path, absolute, directory: true, executable: false });
        visit(absolute, path);
      } else if (entry.isFile()) {
        if (options.exclude?.(path, false)) continue;
        found.push({ path, absolute, directory: false, executable: (entry.mode & 0o111) !== 0 });
      } else {
        throw new PackagingError(
          `${absolute} is not a regular file or directory (a socket, FIFO or device); remove it`,
        );
      }
    }
  };
  visit(dir, '');
  return found;
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
