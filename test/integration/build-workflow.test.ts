import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { BuildSteps } from '../../lambda/build/steps';
import type { Build } from '../../lambda/domain/builds';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { ComponentSpec as ComponentSpecSchema } from '../../lambda/domain/schemas';
import type { HistoryEvent } from '../../lambda/domain/state-store';
import { LocalBuildRunner } from '../../local/builds';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { bundlePackagingTool } from '../../tools/bundle';
import { freshDomain } from '../support/control-plane';

const run = promisify(execFile);
const hasBinary = (name: string) => {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

let dynamo: LocalDynamoDb;
let registry: LocalRegistry;
let source: LocalRegistry;
const root = mkdtempSync(join(tmpdir(), 'ferry-builds-'));
const keepFailures = (build: Build) =>
  build.status === 'failed' ? JSON.stringify(build.failure) : build.status;
const tool = join(root, 'ferry-package.cjs');

beforeAll(async () => {
  [dynamo, registry, source] = await Promise.all([startDynamoDb(), startRegistry(), startRegistry()]);
  bundlePackagingTool(tool);
});
afterAll(async () => {
  await Promise.all([dynamo.stop(), registry.stop(), source.stop()]);
  rmSync(root, { recursive: true, force: true });
});

/** A git repository with the given files, committed; answers its path and the commit. */
function gitRepo(name: string, files: Record<string, string>): { path: string; commit: string } {
  const path = join(root, 'repos', name);
  mkdirSync(path, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(path, file, '..'), { recursive: true });
    writeFileSync(join(path, file), content);
  }
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', path, '-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], {
      encoding: 'utf8',
    }).trim();
  git('init', '--quiet', '--initial-branch=main');
  git('add', '.');
  git('commit', '--quiet', '-m', 'fixture');
  git('tag', 'v1');
  return { path, commit: git('rev-parse', 'HEAD') };
}

/** Builds `spec` through the build workflow, as local mode does; answers the recorded build. */
async function build(spec: unknown, options: { ref?: string; registryHost?: string } = {}): Promise<Build> {
  const { controlPlane, builds } = await freshDomain(dynamo);
  const app = (await controlPlane.createApp({ name: 'shop', inputs: [] }, 'tester')).value;
  const parsed = ComponentSpecSchema.parse(spec) as ComponentSpec;
  const component = (await controlPlane.putComponent(app.id, 'part', parsed, 'tester')).value;
  const steps = new BuildSteps({
    builds,
    registry: { host: options.registryHost ?? registry.host, prefix: 'ferry-acme' },
    repositories: { ensure: async () => undefined },
    defaultImage: 'local',
    environment: { FERRY_REGISTRY_INSECURE: '1' },
  });
  const runner = new LocalBuildRunner({
    steps,
    workRoot: join(root, 'work'),
    packageCommand: `node ${tool}`,
  });
  const requested = (
    await builds.request(
      {
        appId: app.id,
        appName: app.name,
        component: 'part',
        componentVersion: component.version,
        spec: parsed,
        ref: options.ref,
      },
      'tester',
    )
  ).value;
  await runner.start(requested.id);
  await runner.idle();
  const built = await builds.get(requested.id);
  history.set(built.id, (await controlPlane.listAppEvents(app.id, { limit: 100 })).items);
  return built;
}

/** Each build's app history, newest first, as the build left it. */
const history = new Map<string, HistoryEvent[]>();

async function manifestOf(artifact: Build['artifact']) {
  const response = await fetch(`${registry.url}/v2/${artifact?.repository}/manifests/${artifact?.digest}`, {
    headers: { accept: artifact?.mediaType ?? '*/*' },
  });
  expect(response.status).toBe(200);
  return JSON.parse(await response.text());
}

async function blob(repository: string, digest: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`)).arrayBuffer());
}

/** Entry names of a .tar.gz (ustar headers: name at 0..100, size at 124..136). */
function tarEntries(gz: Buffer): string[] {
  const tar = gunzipSync(gz);
  const names: string[] = [];
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(
      header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0',
      8,
    );
    const type = String.fromCharCode(header[156]);
    if (type !== 'x' && type !== 'g') names.push(prefix ? `${prefix}/${name}` : name);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

async function skopeoDigest(artifact: Build['artifact']): Promise<string | undefined> {
  if (!hasBinary('skopeo')) return undefined;
  const { stdout } = await run('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    `docker://${registry.host}/${artifact?.repository}:${artifact?.tag}`,
  ]);
  return `sha256:${(await import('node:crypto')).createHash('sha256').update(stdout).digest('hex')}`;
}

const chart = {
  'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 1.2.3\ndescription: the web tier\n',
  'charts/web/values.yaml': 'replicas: 1\n',
  'charts/web/templates/deployment.yaml': 'kind: Deployment\n',
};

describe('build workflow, run locally', () => {
  it('packages a source Helm chart as a Helm OCI artifact, reproducibly', async () => {
    const repo = gitRepo('chart', chart);
    const first = await build({
      type: 'helm',
      chart: { kind: 'source', source: { repo: repo.path, path: 'charts/web' } },
    });
    expect(first).toMatchObject({ status: 'succeeded', sourceRevision: repo.commit });
    expect(first.artifact).toMatchObject({
      registry: registry.host,
      repository: 'ferry-acme/shop/part',
      tag: first.id,
      digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });
    const manifest = await manifestOf(first.artifact);
    expect(manifest.config.mediaType).toBe('application/vnd.cncf.helm.config.v1+json');
    expect(manifest.layers.map((layer: { mediaType: string }) => layer.mediaType)).toEqual([
      'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
    ]);
    const config = JSON.parse((await blob('ferry-acme/shop/part', manifest.config.digest)).toString());
    expect(config).toMatchObject({ name: 'web', version: '1.2.3' });
    expect(tarEntries(await blob('ferry-acme/shop/part', manifest.layers[0].digest))).toEqual(
      expect.arrayContaining(['web/Chart.yaml', 'web/values.yaml', 'web/templates/deployment.yaml']),
    );
    const skopeo = await skopeoDigest(first.artifact);
    if (skopeo) expect(skopeo).toBe(first.artifact?.digest);

    const second = await build({
      type: 'helm',
      chart: { kind: 'source', source: { repo: `file://${repo.path}`, path: 'charts/web' } },
    });
    expect(second.artifact?.digest).toBe(first.artifact?.digest);
  });

  it('packages a Terraform module with its documented media types', async () => {
    const repo = gitRepo('infra', {
      'db/main.tf': 'variable "size" {}\noutput "endpoint" { value = "db" }\n',
      'db/versions.tf': 'terraform {}\n',
    });
    const built = await build(
      { type: 'terraform', source: { repo: repo.path, path: 'db' }, terraformVersion: '1.9.8' },
      { ref: 'v1' },
    );
    expect(built).toMatchObject({ status: 'succeeded', sourceRevision: repo.commit });
    const manifest = await manifestOf(built.artifact);
    const skopeo = await skopeoDigest(built.artifact);
    if (skopeo) expect(skopeo).toBe(built.artifact?.digest);
    expect(manifest.artifactType).toBe('application/vnd.ferry.terraform.module.v1');
    expect(manifest.config.mediaType).toBe('application/vnd.ferry.terraform.config.v1+json');
    expect(manifest.layers[0].mediaType).toBe('application/vnd.ferry.terraform.module.v1.tar+gzip');
    expect(tarEntries(await blob('ferry-acme/shop/part', manifest.layers[0].digest)).join(',')).toMatch(
      /main\.tf.*versions\.tf/,
    );
  });

  it('copies a prebuilt image, every platform of its index, into the tenant registry', async () => {
    const image = await pushTwoPlatformIndex(source, 'vendor/api', '1.0');
    const built = await build({ type: 'image', image: { uri: `${source.host}/vendor/api:1.0` } });
    expect(built.status).toBe('succeeded');
    expect(built.artifact).toMatchObject({
      digest: image.digest,
      mediaType: 'application/vnd.oci.image.index.v1+json',
    });
    for (const child of image.children) {
      const response = await fetch(`${registry.url}/v2/ferry-acme/shop/part/manifests/${child}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(response.status).toBe(200);
    }
  });

  it('records a prebuilt Helm chart without building anything', async () => {
    const built = await build({
      type: 'helm',
      chart: { kind: 'prebuilt', repo: 'https://charts.example.com', name: 'redis', version: '19.0.1' },
    });
    expect(built).toMatchObject({
      status: 'succeeded',
      artifact: {
        uri: 'https://charts.example.com',
        chart: { repo: 'https://charts.example.com', name: 'redis', version: '19.0.1' },
      },
      sourceRevision: 'redis@19.0.1',
    });
  });

  it('runs a custom plugin build step that pushes its own artifact', async () => {
    const script = join(root, 'plugin-build.sh');
    writeFileSync(
      script,
      `#!/bin/sh\nset -e\ncd "$(mktemp -d)"\nmkdir chart\nprintf 'apiVersion: v2\\nname: plug\\nversion: 0.1.0\\n' > chart/Chart.yaml\n$FERRY_PACKAGE -- helm chart --to "$FERRY_ARTIFACT_REF" --env-file "$FERRY_OUTPUT_ENV"\n`,
    );
    chmodSync(script, 0o755);
    const built = await build({
      type: 'custom',
      plugin: {
        image: 'ghcr.io/acme/plugin:1',
        build: { commands: [script] },
        deploy: { commands: ['true'] },
      },
    });
    expect(keepFailures(built)).toBe('succeeded');
    expect((await manifestOf(built.artifact)).config.mediaType).toBe(
      'application/vnd.cncf.helm.config.v1+json',
    );
  });

  it('builds a Dockerfile with buildah and records the commit', async () => {
    const busybox = '/bin/busybox';
    const files: Record<string, string> = {
      'app/Dockerfile':
        'FROM scratch AS base\nCOPY busybox /bin/busybox\nARG VERSION\nLABEL version=$VERSION\n',
    };
    const repo = gitRepo('docker', files);
    if (hasBinary('buildah') && existsSync(busybox)) {
      copyFileSync(busybox, join(repo.path, 'app', 'busybox'));
      execFileSync('git', ['-C', repo.path, '-c', 'user.email=t@e', '-c', 'user.name=t', 'add', '.']);
      execFileSync('git', [
        '-C',
        repo.path,
        '-c',
        'user.email=t@e',
        '-c',
        'user.name=t',
        'commit',
        '-qm',
        'busybox',
      ]);
    }
    const built = await build({
      type: 'dockerfile',
      source: { repo: repo.path, path: 'app' },
      buildArgs: { VERSION: '1.0' },
      target: 'base',
    });
    if (!hasBinary('buildah')) {
      // Without buildah the build must fail, saying so.
      expect(built).toMatchObject({
        status: 'failed',
        failure: { message: expect.stringMatching(/buildah/) },
      });
      return;
    }
    expect(keepFailures(built)).toBe('succeeded');
    expect(built.sourceRevision).toBe(
      execFileSync('git', ['-C', repo.path, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(),
    );
    const manifest = await manifestOf(built.artifact);
    expect(manifest.layers.length).toBeGreaterThan(0);
    const skopeo = await skopeoDigest(built.artifact);
    if (skopeo) expect(skopeo).toBe(built.artifact?.digest);
  });

  it("fails a Dockerfile that does not build, with buildah's reason and no artifact", async () => {
    const repo = gitRepo(`docker-broken-${Date.now()}`, {
      Dockerfile: 'FROM scratch\nCOPY not-in-the-repo /x\n',
    });
    const failed = await build({ type: 'dockerfile', source: { repo: repo.path } });
    expect(failed).toMatchObject({ status: 'failed', failure: { step: 'BUILD' } });
    expect(failed.failure?.message).toMatch(hasBinary('buildah') ? /not-in-the-repo/ : /buildah/);
    expect(failed.artifact).toBeUndefined();
  });
});

describe('build workflow faults', () => {
  it.each([
    [
      'a missing repository',
      { type: 'terraform', source: { repo: '/nonexistent/repo' }, terraformVersion: '1.9.8' },
      {},
      /nonexistent\/repo/,
    ],
    ['a missing ref', 'terraform-ref', { ref: 'no-such-ref' }, /no-such-ref/],
    ['a missing path', 'terraform-path', {}, /does-not-exist/],
    ['a chart without Chart.yaml', 'chart-empty', {}, /Chart\.yaml/],
  ])(
    'fails on %s with the step and the reason in the build and its history',
    async (_name, specOrFixture, options, reason) => {
      let spec: unknown = specOrFixture;
      if (specOrFixture === 'terraform-ref' || specOrFixture === 'terraform-path') {
        const repo = gitRepo(`${specOrFixture}-${Date.now()}`, { 'main.tf': 'terraform {}\n' });
        spec = {
          type: 'terraform',
          source: { repo: repo.path, path: specOrFixture === 'terraform-path' ? 'does-not-exist' : '.' },
          terraformVersion: '1.9.8',
        };
      }
      if (specOrFixture === 'chart-empty') {
        const repo = gitRepo(`chart-empty-${Date.now()}`, { 'charts/web/values.yaml': 'a: 1\n' });
        spec = { type: 'helm', chart: { kind: 'source', source: { repo: repo.path, path: 'charts/web' } } };
      }
      const failed = await build(spec, options);
      expect(failed.status).toBe('failed');
      expect(failed.failure?.step).toMatch(/^[A-Z_]+$/);
      expect(failed.failure?.message).toMatch(reason);
      expect(failed.artifact).toBeUndefined();
      expect(failed.logsUrl).toMatch(/^file:\/\//);
      // History shows every step, the failing one with its reason.
      expect(history.get(failed.id)?.map((event) => event.type)).toEqual([
        'build.failed',
        'build.started',
        'build.queued',
        'component.created',
        'app.created',
      ]);
      expect(history.get(failed.id)?.[0].data).toMatchObject({ failure: { step: failed.failure?.step } });
    },
  );

  it('fails with the reason when the registry refuses the push', async () => {
    const repo = gitRepo(`refused-${Date.now()}`, chart);
    const failed = await build(
      { type: 'helm', chart: { kind: 'source', source: { repo: repo.path, path: 'charts/web' } } },
      { registryHost: '127.0.0.1:9' },
    );
    expect(failed.status).toBe('failed');
    expect(failed.failure?.message).toMatch(/127\.0\.0\.1:9/);
    expect(failed.artifact).toBeUndefined();
  });
});

/** Pushes a two-platform OCI index (two tiny images) to `target`; answers its digest and children. */
async function pushTwoPlatformIndex(target: LocalRegistry, repository: string, tag: string) {
  const { createHash } = await import('node:crypto');
  const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const put = async (data: Buffer) => {
    const start = await fetch(`${target.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!, target.url);
    location.searchParams.set('digest', digestOf(data));
    expect((await fetch(location, { method: 'PUT', body: data })).status).toBe(201);
  };
  const children: string[] = [];
  const entries = [];
  for (const architecture of ['amd64', 'arm64']) {
    const layer = Buffer.from(`layer for ${architecture}\n`);
    const config = Buffer.from(
      JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
    );
    await put(layer);
    await put(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: digestOf(config),
          size: config.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: digestOf(layer),
            size: layer.length,
          },
        ],
      }),
    );
    const response = await fetch(`${target.url}/v2/${repository}/manifests/${digestOf(manifest)}`, {
      method: 'PUT',
      body: manifest,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(response.status).toBe(201);
    children.push(digestOf(manifest));
    entries.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: digestOf(manifest),
      size: manifest.length,
      platform: { architecture, os: 'linux' },
    });
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries,
    }),
  );
  const response = await fetch(`${target.url}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    body: index,
    headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
  });
  expect(response.status).toBe(201);
  return { digest: digestOf(index), children };
}
