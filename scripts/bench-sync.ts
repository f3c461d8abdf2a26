/**
 * Ferry's copier against skopeo, side by side: a ~200 MB image (three incompressible layers of about
 * 100, 60 and 40 MB and a config) pushed to one local docker-registry, then copied into a fresh one
 * by each tool in turn, alternating which goes first, several runs; then copied again to the same
 * destination, where every blob is already present. Prints the median seconds and MB/s of each and
 * the ratio.
 *
 *   npm run bench:sync -- [--runs N] [--concurrency N] [--chunked]
 *
 * Each cold run gets a fresh destination registry: skopeo remembers (in its blob-info cache) which
 * repositories of a registry hold a blob and would mount from an earlier run's repository instead of
 * copying. skopeo runs under `bash -c '…; times'` so its CPU time (user + system) can be read; its
 * wall times include starting bash and skopeo, and the line below the table says how long that
 * takes alone. CPU is the copier's process only (Ferry's: this process), never the registries'.
 */

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { RegistryClient } from '../lambda/oci/client';
import { type CopyResult, copyImage } from '../lambda/oci/copy';
import { DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST } from '../lambda/oci/media-types';
import { type LocalRegistry, startRegistry } from '../local/registry';

const MB = 1_000_000;
const LAYER_SIZES = [100 * MB, 60 * MB, 40 * MB];
const SOURCE_REPOSITORY = 'bench/app';
const TAG = 'v1';

interface Options {
  readonly runs: number;
  readonly concurrency: number | undefined;
  readonly chunked: boolean | undefined;
}

interface Timing {
  /** Wall seconds. */
  readonly seconds: number;
  /** CPU seconds (user + system) of the copier's process. */
  readonly cpu: number;
}

interface Sample {
  readonly tool: 'ferry' | 'skopeo';
  readonly cold: Timing;
  readonly warm: Timing;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      concurrency: { type: 'string' },
      chunked: { type: 'boolean' },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new Error(`--runs ${values.runs}: give a positive integer`);
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isSafeInteger(concurrency) || concurrency < 1)) {
    throw new Error(`--concurrency ${values.concurrency}: give a positive integer`);
  }
  return { runs, concurrency, chunked: values.chunked };
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Pushes the benchmark image to `registry`; returns its digest and total blob bytes. */
async function pushImage(registry: LocalRegistry): Promise<{ digest: string; bytes: number }> {
  const client = new RegistryClient({ registry: registry.host, insecure: true });
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }),
  );
  const layers: { digest: string; size: number }[] = [];
  for (const size of LAYER_SIZES) {
    const layer = randomBytes(size);
    const digest = sha256(layer);
    await client.pushBlob(SOURCE_REPOSITORY, digest, size, layer);
    layers.push({ digest, size });
  }
  await client.pushBlob(SOURCE_REPOSITORY, sha256(config), config.length, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: config.length, digest: sha256(config) },
      layers: layers.map((layer) => ({ mediaType: DOCKER_LAYER_GZIP, ...layer })),
    }),
  );
  const digest = await client.putManifest(SOURCE_REPOSITORY, TAG, manifest, DOCKER_MANIFEST);
  return { digest, bytes: config.length + LAYER_SIZES.reduce((sum, size) => sum + size, 0) };
}

/** Runs skopeo under bash; resolves with its wall and CPU time, rejects with its output when it fails. */
function skopeo(args: readonly string[]): Promise<Timing> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'skopeo "$@" && times', 'bash', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const seconds = (performance.now() - started) / 1000;
      // `times` prints the shell's user and system time, then its children's: `0m0.412s 0m0.151s`.
      const children = output
        .trim()
        .split('\n')
        .at(-1)
        ?.match(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/);
      if (code !== 0 || !children) {
        reject(new Error(`skopeo ${args.join(' ')} exited ${code}:\n${output.slice(-2000)}`));
        return;
      }
      const [userMin, userSec, sysMin, sysSec] = children.slice(1).map(Number) as [
        number,
        number,
        number,
        number,
      ];
      resolve({ seconds, cpu: userMin * 60 + userSec + sysMin * 60 + sysSec });
    });
  });
}

async function skopeoSupportsPreserveDigests(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('skopeo', ['copy', '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let help = '';
    child.stdout.on('data', (chunk: Buffer) => {
      help += chunk.toString();
    });
    child.once('error', () => resolve(false));
    child.once('exit', () => resolve(help.includes('--preserve-digests')));
  });
}

async function ferryCopy(
  source: LocalRegistry,
  dest: LocalRegistry,
  repository: string,
  opts: Options,
): Promise<Timing & { result: CopyResult }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await copyImage(
    new RegistryClient({ registry: source.host, insecure: true }),
    SOURCE_REPOSITORY,
    TAG,
    new RegistryClient({ registry: dest.host, insecure: true }),
    repository,
    TAG,
    {
      ...(opts.concurrency !== undefined && { concurrency: opts.concurrency }),
      ...(opts.chunked !== undefined && { chunked: opts.chunked }),
    },
  );
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6, result };
}

function skopeoCopy(source: LocalRegistry, dest: LocalRegistry, repository: string, preserve: boolean) {
  return skopeo([
    'copy',
    '--quiet',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    ...(preserve ? ['--preserve-digests'] : []),
    `docker://${source.host}/${SOURCE_REPOSITORY}:${TAG}`,
    `docker://${dest.host}/${repository}:${TAG}`,
  ]);
}

async function expectDigest(dest: LocalRegistry, repository: string, digest: string, tool: string) {
  const found = await new RegistryClient({ registry: dest.host, insecure: true }).headManifest(
    repository,
    TAG,
  );
  if (found?.digest !== digest) {
    throw new Error(
      `${tool} copied ${repository}:${TAG} as ${found?.digest ?? 'nothing'}, expected ${digest}`,
    );
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const opts = options();
  const preserve = await skopeoSupportsPreserveDigests();
  const registries = new Set<LocalRegistry>();
  const start = async () => {
    const registry = await startRegistry();
    registries.add(registry);
    return registry;
  };
  const stop = async (registry: LocalRegistry) => {
    registries.delete(registry);
    await registry.stop();
  };
  const stopAll = () => Promise.all([...registries].map(stop));
  const interrupted = () => {
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    const source = await start();
    process.stdout.write('pushing the benchmark image... ');
    const image = await pushImage(source);
    const megabytes = image.bytes / MB;
    console.log(`${megabytes.toFixed(1)} MB, ${image.digest}`);

    const samples: Sample[] = [];
    for (let run = 1; run <= opts.runs; run++) {
      const dest = await start();
      const tools = run % 2 === 1 ? (['ferry', 'skopeo'] as const) : (['skopeo', 'ferry'] as const);
      const line: string[] = [];
      for (const tool of tools) {
        const repository = `bench/${tool}-${run}`;
        let cold: Timing;
        let warm: Timing;
        if (tool === 'ferry') {
          const first = await ferryCopy(source, dest, repository, opts);
          if (first.result.blobsCopied !== LAYER_SIZES.length + 1) {
            throw new Error(`ferry found blobs present on a cold run: ${JSON.stringify(first.result)}`);
          }
          cold = first;
          const again = await ferryCopy(source, dest, repository, opts);
          if (again.result.blobsSkipped !== LAYER_SIZES.length + 1) {
            throw new Error(`ferry sent blobs on a warm run: ${JSON.stringify(again.result)}`);
          }
          warm = again;
        } else {
          cold = await skopeoCopy(source, dest, repository, preserve);
          warm = await skopeoCopy(source, dest, repository, preserve);
        }
        await expectDigest(dest, repository, image.digest, tool);
        samples.push({ tool, cold, warm });
        line.push(`${tool} ${cold.seconds.toFixed(2)} s / ${warm.seconds.toFixed(2)} s`);
      }
      console.log(`run ${run}/${opts.runs}: ${line.join(', ')} (cold / all present)`);
      await stop(dest);
    }

    const starts: number[] = [];
    for (let i = 0; i < 3; i++) starts.push((await skopeo(['--version'])).seconds);
    const skopeoStart = median(starts);
    const column = (tool: Sample['tool'], which: 'cold' | 'warm', field: keyof Timing) =>
      median(samples.filter((sample) => sample.tool === tool).map((sample) => sample[which][field]));
    const rows = (['cold', 'warm'] as const).map((which) => ({
      name: which === 'cold' ? 'copy, nothing present' : 'copy, all blobs present',
      ferry: column('ferry', which, 'seconds'),
      ferryCpu: column('ferry', which, 'cpu'),
      skopeo: column('skopeo', which, 'seconds'),
      skopeoCpu: column('skopeo', which, 'cpu'),
    }));
    const seconds = (value: number, width: number) => value.toFixed(3).padStart(width);
    const rate = (value: number) => (megabytes / value).toFixed(0).padStart(10);
    console.log('');
    console.log(
      `${LAYER_SIZES.length} layers + config, ${megabytes.toFixed(1)} MB; ` +
        `median of ${opts.runs} runs each, ` +
        `alternating; skopeo ${preserve ? 'with' : 'without'} --preserve-digests` +
        (opts.concurrency !== undefined ? `; ferry concurrency ${opts.concurrency}` : '') +
        (opts.chunked ? '; ferry chunked uploads' : ''),
    );
    const header = ['ferry s', 'ferry MB/s', 'ferry CPU s', ' skopeo s', 'skopeo MB/s', 'skopeo CPU s'];
    console.log(`${'case'.padEnd(25)}${header.join('  ')}  skopeo/ferry`);
    for (const row of rows) {
      console.log(
        `${row.name.padEnd(23)} ${seconds(row.ferry, 9)} ${rate(row.ferry)} ${seconds(row.ferryCpu, 12)} ` +
          `${seconds(row.skopeo, 10)} ${rate(row.skopeo)}   ${seconds(row.skopeoCpu, 11)} ` +
          `${(row.skopeo / row.ferry).toFixed(2).padStart(13)}`,
      );
    }
    console.log(
      '(skopeo/ferry: the ratio of median wall times, above 1 when Ferry is faster. CPU: the copying ' +
        "process's user + system time, registries not counted. skopeo's wall times include starting " +
        `bash and skopeo: \`bash -c 'skopeo --version; times'\` alone takes ${skopeoStart.toFixed(3)} s)`,
    );
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await stopAll();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
