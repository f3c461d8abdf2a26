import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '../../lambda/oci/client';
import { OCI_IMAGE_MANIFEST, TERRAFORM_MODULE_ARTIFACT } from '../../lambda/oci/media-types';
import { freePort } from '../../local/process';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { ROOT, TSX } from '../support/processes';

const run = promisify(execFile);

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI as the build agent does. The leading `--` keeps Node 20 from reading `--env-file`
 * as its own option.
 */
function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, ['tools/ferry-package.ts', '--', ...args], {
      cwd: ROOT,
      env: { ...process.env, FERRY_REGISTRY_INSECURE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function readEnvFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** The digest skopeo computes for the raw manifest, or undefined where skopeo is not installed. */
async function skopeoDigest(reference: string): Promise<string | undefined> {
  const skopeo = await run('skopeo', ['--version']).catch(() => undefined);
  if (!skopeo) return undefined; // .ci/run installs skopeo; a developer machine may not have it
  const { stdout } = await run(
    'skopeo',
    ['inspect', '--raw', '--tls-verify=false', `docker://${reference}`],
    {
      encoding: 'buffer',
    },
  );
  return `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
}

describe('ferry-package CLI', () => {
  let tenant: LocalRegistry;
  let install: LocalRegistry;
  const work = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
  const chartDir = join(work, 'chart');
  const moduleDir = join(work, 'module');

  beforeAll(async () => {
    [tenant, install] = await Promise.all([startRegistry(), startRegistry()]);
    mkdirSync(join(chartDir, 'templates'), { recursive: true });
    writeFileSync(join(chartDir, 'Chart.yaml'), 'apiVersion: v2\nname: shop\nversion: 0.2.0+build.7\n');
    writeFileSync(join(chartDir, 'templates', 'service.yaml'), 'kind: Service\n');
    mkdirSync(moduleDir);
    writeFileSync(join(moduleDir, 'main.tf'), 'variable "region" {}\noutput "id" {\n  value = "x"\n}\n');
  });
  afterAll(async () => {
    await Promise.all([tenant?.stop(), install?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  it('pushes a Helm chart, tagged with its version, and writes the env file', async () => {
    const envFile = join(work, 'helm.env');

    const result = await cli([
      'helm',
      chartDir,
      '--to',
      `${tenant.host}/ferry-acme/shop`,
      '--env-file',
      envFile,
    ]);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    const written = readEnvFile(envFile);
    expect(Object.keys(written)).toEqual([
      'ARTIFACT_DIGEST',
      'ARTIFACT_SIZE',
      'ARTIFACT_MEDIA_TYPE',
      'ARTIFACT_URI',
    ]);
    expect(written.ARTIFACT_DIGEST).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(written.ARTIFACT_MEDIA_TYPE).toBe(OCI_IMAGE_MANIFEST);
    expect(written.ARTIFACT_URI).toBe(`${tenant.host}/ferry-acme/shop@${written.ARTIFACT_DIGEST}`);
    expect(result.stdout).toBe(
      `pushed helm chart shop 0.2.0+build.7 to ${tenant.host}/ferry-acme/shop:0.2.0_build.7: ` +
        `${written.ARTIFACT_DIGEST} (${OCI_IMAGE_MANIFEST}, ${written.ARTIFACT_SIZE} bytes)\n`,
    );
    const client = new RegistryClient({ registry: tenant.host, insecure: true });
    const manifest = await client.getManifest('ferry-acme/shop', '0.2.0_build.7');
    expect(manifest.digest).toBe(written.ARTIFACT_DIGEST);
    expect(String(manifest.bytes.length)).toBe(written.ARTIFACT_SIZE);
    const skopeo = await skopeoDigest(`${tenant.host}/ferry-acme/shop:0.2.0_build.7`);
    if (skopeo !== undefined) expect(skopeo).toBe(written.ARTIFACT_DIGEST);
  });

  it('gives the same digest when the same chart is pushed again, and inspect agrees', async () => {
    const first = join(work, 'first.env');
    const second = join(work, 'second.env');
    const inspected = join(work, 'inspect.env');

    await cli(['helm', chartDir, '--to', `${tenant.host}/ferry-acme/again:a`, '--env-file', first]);
    await cli(['helm', chartDir, '--to', `${tenant.host}/ferry-acme/again:b`, '--env-file', second]);
    const inspect = await cli(['inspect', `${tenant.host}/ferry-acme/again:b`, '--env-file', inspected]);

    expect(readEnvFile(second)).toEqual(readEnvFile(first));
    expect(inspect.code).toBe(0);
    expect(readEnvFile(inspected)).toEqual(readEnvFile(first));
    expect(inspect.stdout).toBe(
      `${tenant.host}/ferry-acme/again:b is ${readEnvFile(first).ARTIFACT_DIGEST} ` +
        `(${OCI_IMAGE_MANIFEST}, ${readEnvFile(first).ARTIFACT_SIZE} bytes)\n`,
    );
  });

  it('pushes a Terraform module as a Ferry module artifact', async () => {
    const envFile = join(work, 'terraform.env');

    const result = await cli([
      'terraform',
      moduleDir,
      '--to',
      `${tenant.host}/ferry-acme/db:v1`,
      '--env-file',
      envFile,
    ]);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^pushed terraform module .* \(1 variables, 1 outputs\) to .*:v1: sha256:/);
    const written = readEnvFile(envFile);
    const client = new RegistryClient({ registry: tenant.host, insecure: true });
    const manifest = await client.getManifest('ferry-acme/db', 'v1');
    expect(manifest.digest).toBe(written.ARTIFACT_DIGEST);
    expect(JSON.parse(manifest.bytes.toString()).artifactType).toBe(TERRAFORM_MODULE_ARTIFACT);
    const skopeo = await skopeoDigest(`${tenant.host}/ferry-acme/db:v1`);
    if (skopeo !== undefined) expect(skopeo).toBe(written.ARTIFACT_DIGEST);
  });

  it('copies an artifact to another registry with its digest unchanged', async () => {
    const pushed = join(work, 'pushed.env');
    const copied = join(work, 'copied.env');
    await cli(['terraform', moduleDir, '--to', `${tenant.host}/ferry-acme/net:v3`, '--env-file', pushed]);

    const result = await cli([
      'copy',
      `${tenant.host}/ferry-acme/net:v3`,
      '--to',
      `${install.host}/ferry/net`,
      '--env-file',
      copied,
    ]);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    const digest = readEnvFile(pushed).ARTIFACT_DIGEST!;
    expect(readEnvFile(copied)).toEqual({
      ARTIFACT_DIGEST: digest,
      ARTIFACT_SIZE: readEnvFile(pushed).ARTIFACT_SIZE,
      ARTIFACT_MEDIA_TYPE: OCI_IMAGE_MANIFEST,
      ARTIFACT_URI: `${install.host}/ferry/net@${digest}`,
    });
    expect(result.stdout).toMatch(
      new RegExp(`^copied ${tenant.host}/ferry-acme/net:v3 to ${install.host}/ferry/net:v3: `),
    );
    const skopeo = await skopeoDigest(`${install.host}/ferry/net:v3`);
    if (skopeo !== undefined) expect(skopeo).toBe(digest);
  });

  it('says Chart.yaml is missing in one line and exits 1 without writing the env file', async () => {
    const empty = join(work, 'not-a-chart');
    mkdirSync(empty);
    const envFile = join(work, 'missing.env');

    const result = await cli(['helm', empty, '--to', `${tenant.host}/ferry-acme/x:1`, '--env-file', envFile]);

    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `ferry-package: ${join(empty, 'Chart.yaml')} is missing; a Helm chart needs one\n`,
    );
    expect(existsSync(envFile)).toBe(false);
  });

  it('says a directory does not exist and exits 1', async () => {
    const result = await cli(['terraform', join(work, 'nowhere'), '--to', `${tenant.host}/ferry-acme/x:1`]);

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`ferry-package: ${join(work, 'nowhere')} does not exist\n`);
  });

  it('names the registry and what it refused, in one line, and exits 1', async () => {
    const closed = `127.0.0.1:${await freePort()}`;

    const missing = await cli(['inspect', `${tenant.host}/ferry-acme/none:v9`]);
    const unreachable = await cli(['helm', chartDir, '--to', `${closed}/ferry-acme/shop:1`]);

    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `ferry-package: ${tenant.host}/ferry-acme/none: get manifest v9 failed: ` +
        'HTTP 404 MANIFEST_UNKNOWN: manifest unknown\n',
    );
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      new RegExp(
        `^ferry-package: ${closed}/ferry-acme/shop: .* failed: ` +
          `cannot reach http://${closed} \\(ECONNREFUSED\\)\\n$`,
      ),
    );
  });

  it.each([
    [[], /no command given/],
    [['publish', 'x'], /unknown command "publish"/],
    [['helm', 'chart'], /helm needs --to/],
    [['helm', 'chart', '--to', 'Not A Ref'], /--to: invalid image reference/],
    [['terraform', 'module', '--to', '127.0.0.1:5000/a/b'], /--to names no tag/],
    [['inspect', 'a/b', '--bogus', 'x'], /unknown option --bogus/],
  ])('exits 2 with the usage for %j', async (args, message) => {
    const result = await cli(args);

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain('usage: ferry-package');
  });
});
