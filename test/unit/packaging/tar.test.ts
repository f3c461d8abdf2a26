import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deterministicGzip,
  PackagingError,
  packDirectory,
  readTarGz,
  sourceDateEpoch,
} from '../../../lambda/packaging/tar';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** The same small tree each time, with whatever modes and times the caller gives. */
function tree(options: { fileMode: number; scriptMode: number; time: number }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-tar-'));
  made.push(dir);
  mkdirSync(join(dir, 'templates', 'nested'), { recursive: true });
  mkdirSync(join(dir, 'empty'));
  mkdirSync(join(dir, '.git'));
  writeFileSync(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(dir, 'values.yaml'), 'replicas: 1\n');
  writeFileSync(join(dir, 'b.txt'), 'b\n');
  writeFileSync(join(dir, 'templates', 'nested', 'cm.yaml'), 'kind: ConfigMap\n');
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'values.yaml'), options.fileMode);
  chmodSync(join(dir, 'b.txt'), options.fileMode);
  chmodSync(join(dir, 'run.sh'), options.scriptMode);
  for (const path of ['values.yaml', 'b.txt', 'run.sh', 'templates', 'empty']) {
    utimesSync(join(dir, path), options.time, options.time);
  }
  return dir;
}

describe('packDirectory', () => {
  it('gives the same bytes for the same tree, whatever its modes and times on disk', async () => {
    const first = tree({ fileMode: 0o600, scriptMode: 0o700, time: 1_000_000 });
    const second = tree({ fileMode: 0o664, scriptMode: 0o775, time: 1_700_000_000 });

    const a = await packDirectory(first);
    const b = await packDirectory(second);
    const again = await packDirectory(first);

    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(a.bytes.equals(again.bytes)).toBe(true);
  });

  it('sorts entries, keeps directories, normalises owners, times and modes, leaves out .git', async () => {
    const dir = tree({ fileMode: 0o600, scriptMode: 0o700, time: 1_000_000 });

    const packed = await packDirectory(dir, { mtime: 0 });
    const entries = await readTarGz(packed.bytes);

    expect(entries.map((entry) => [entry.name, entry.type, entry.mode.toString(8)])).toEqual([
      ['b.txt', 'file', '644'],
      ['empty/', 'directory', '755'],
      ['run.sh', 'file', '755'],
      ['templates/', 'directory', '755'],
      ['templates/nested/', 'directory', '755'],
      ['templates/nested/cm.yaml', 'file', '644'],
      ['values.yaml', 'file', '644'],
    ]);
    for (const entry of entries) {
      expect(entry).toMatchObject({ uid: 0, gid: 0, uname: '', gname: '', mtime: 0 });
    }
    expect(entries.find((entry) => entry.name === 'run.sh')!.content.toString()).toBe('#!/bin/sh\necho hi\n');
    expect(packed.files).toEqual(['b.txt', 'run.sh', 'templates/nested/cm.yaml', 'values.yaml']);
  });

  it('puts every entry under a prefix directory when asked', async () => {
    const dir = tree({ fileMode: 0o644, scriptMode: 0o755, time: 1 });

    const entries = await readTarGz((await packDirectory(dir, { prefix: 'demo' })).bytes);

    expect(entries[0]!.name).toBe('demo/');
    expect(entries.every((entry) => entry.name.startsWith('demo/'))).toBe(true);
    expect(entries.map((entry) => entry.name)).toContain('demo/templates/nested/cm.yaml');
  });

  it('stamps entries with SOURCE_DATE_EPOCH when set', async () => {
    const dir = tree({ fileMode: 0o644, scriptMode: 0o755, time: 1 });
    const before = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      const entries = await readTarGz((await packDirectory(dir)).bytes);
      expect(new Set(entries.map((entry) => entry.mtime))).toEqual(new Set([1_700_000_000]));
    } finally {
      if (before === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = before;
    }
  });

  it('refuses a malformed SOURCE_DATE_EPOCH, naming it', () => {
    expect(sourceDateEpoch({})).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '42' })).toBe(42);
    expect(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: 'yesterday' })).toThrow(
      'SOURCE_DATE_EPOCH "yesterday" is not a whole number of seconds',
    );
  });

  it('refuses a symbolic link, naming it', async () => {
    const dir = tree({ fileMode: 0o644, scriptMode: 0o755, time: 1 });
    symlinkSync('values.yaml', join(dir, 'templates', 'link.yaml'));

    const packing = packDirectory(dir);

    await expect(packing).rejects.toThrow(PackagingError);
    await expect(packing).rejects.toThrow(`${join(dir, 'templates', 'link.yaml')} is a symbolic link`);
  });

  it('refuses a missing directory, naming it', async () => {
    await expect(packDirectory('/nonexistent/ferry-chart')).rejects.toThrow(
      '/nonexistent/ferry-chart does not exist',
    );
  });

  it('leaves out what the exclude function names, with everything below a directory', async () => {
    const dir = tree({ fileMode: 0o644, scriptMode: 0o755, time: 1 });

    const packed = await packDirectory(dir, {
      exclude: (path) => path === 'templates' || path.endsWith('.sh'),
    });

    expect(packed.files).toEqual(['b.txt', 'values.yaml']);
  });
});

describe('deterministicGzip', () => {
  it('writes a fixed header: no timestamp, no name, OS unknown', () => {
    const gzipped = deterministicGzip(Buffer.from('hello'));

    expect([...gzipped.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    expect(deterministicGzip(Buffer.from('hello')).equals(gzipped)).toBe(true);
  });
});
