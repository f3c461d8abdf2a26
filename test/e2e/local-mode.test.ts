import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Spawned, spawnProject } from '../support/processes';

/** Starts `npm start`'s entry point on a free port over `dataDir`; answers its base URL. */
async function startLocal(dataDir: string): Promise<{ ims: Spawned; url: string }> {
  const ims = spawnProject(['bin/local.ts'], { PORT: '0', FERRY_DATA_DIR: dataDir });
  const url = (await ims.waitFor(/API\s+(http:\/\/127\.0\.0\.1:\d+)\/v1/))[1];
  return { ims, url };
}

async function stopLocal(ims: Spawned): Promise<number | null> {
  if (ims.child.exitCode !== null) return ims.child.exitCode;
  ims.child.kill('SIGINT');
  return ims.exited();
}

async function send(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

describe('local mode (npm start)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-local-'));
  let ims: Spawned;
  let url: string;

  beforeAll(async () => {
    ({ ims, url } = await startLocal(dataDir));
  });

  afterAll(async () => {
    await stopLocal(ims);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the API on loopback and says what it started', async () => {
    expect(ims.output()).toContain(`data in ${dataDir}`);
    const response = await send(url, 'GET', '/v1/health');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok', tenant: 'local' });
  });

  it('runs the control plane over HTTP: app, components, install, history', async () => {
    const app = await send(url, 'POST', '/v1/apps', {
      name: 'shop',
      inputs: [{ name: 'domain', required: true }],
    });
    expect(app.status).toBe(201);
    expect(app.headers.get('etag')).toBe('"1"');
    const db = await send(url, 'PUT', `/v1/apps/${app.body.id}/components/db`, {
      type: 'terraform',
      source: { repo: 'file:///srv/infra', path: 'db' },
      terraformVersion: '1.9.8',
      variables: { domain: '{{ install.inputs.domain }}' },
    });
    expect(db.status).toBe(201);
    const web = await send(url, 'PUT', `/v1/apps/${app.body.id}/components/web`, {
      type: 'image',
      image: { uri: 'docker.io/library/nginx:1.27' },
      service: {
        cluster: 'main',
        subnets: ['subnet-1'],
        environment: { DB: '{{ components.db.outputs.endpoint }}' },
      },
    });
    expect(web.body.dependencies).toEqual(['db']);
    const install = await send(url, 'POST', `/v1/apps/${app.body.id}/installs`, {
      accountId: '111122223333',
      region: 'eu-west-1',
      inputs: { domain: 'shop.example.com' },
    });
    expect(install.status).toBe(201);
    expect(install.body.status).toBe('awaiting-access');
    const history = await send(url, 'GET', `/v1/apps/${app.body.id}/events`);
    expect(history.body.items.map((event: { type: string }) => event.type)).toEqual([
      'install.created',
      'component.created',
      'component.created',
      'app.created',
    ]);
    const malformed = await fetch(`${url}/v1/apps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(malformed.status).toBe(400);
    const document = await send(url, 'GET', '/v1/openapi.json');
    expect(document.body.openapi).toBe('3.1.0');
  });

  it('builds a component on request and pushes it to the local registry', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'ferry-repo-'));
    mkdirSync(join(repo, 'db'));
    writeFileSync(join(repo, 'db', 'main.tf'), 'variable "domain" {}\n');
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, '-c', 'user.email=t@e', '-c', 'user.name=t', ...args]);
    git('init', '-q', '--initial-branch=main');
    git('add', '.');
    git('commit', '-qm', 'module');
    const app = (await send(url, 'POST', '/v1/apps', { name: 'builder' })).body;
    await send(url, 'PUT', `/v1/apps/${app.id}/components/db`, {
      type: 'terraform',
      source: { repo: `file://${repo}`, path: 'db' },
      terraformVersion: '1.9.8',
      variables: { domain: '{{ install.id }}.example.com' },
    });
    const started = await send(url, 'POST', `/v1/apps/${app.id}/components/db/builds`);
    expect(started.status).toBe(202);
    await ims.waitFor(new RegExp(`build ${started.body.id} (succeeded|failed)`));
    const build = (await send(url, 'GET', `/v1/builds/${started.body.id}`)).body;
    expect(build).toMatchObject({ status: 'succeeded', artifact: { repository: 'ferry-local/builder/db' } });
    const registry = ims.output().match(/registry\s+docker-registry at (\S+)/)![1];
    const manifest = await fetch(
      `http://${registry}/v2/ferry-local/builder/db/manifests/${build.artifact.digest}`,
      {
        headers: { accept: build.artifact.mediaType },
      },
    );
    expect(manifest.status).toBe(200);

    // Release the build to an install: synced into the install's namespace, applied locally.
    const install = (
      await send(url, 'POST', `/v1/apps/${app.id}/installs`, {
        accountId: '111122223333',
        region: 'eu-west-1',
      })
    ).body;
    const release = await send(url, 'POST', `/v1/apps/${app.id}/releases`, {
      installs: [install.id],
      strategy: { waveSize: 1, pauseSeconds: 0, maxFailures: 0 },
    });
    expect(release.status).toBe(202);
    await ims.waitFor(new RegExp(`release ${release.body.id} (succeeded|ended)`));
    expect((await send(url, 'GET', `/v1/releases/${release.body.id}`)).body).toMatchObject({
      status: 'succeeded',
      counts: { succeeded: 1 },
      builds: { db: build.id },
    });
    const deployed = (await send(url, 'GET', `/v1/installs/${install.id}/components`)).body.items;
    expect(deployed).toEqual([
      expect.objectContaining({
        component: 'db',
        status: 'deployed',
        buildId: build.id,
        releaseId: release.body.id,
      }),
    ]);
    const synced = await fetch(
      `http://${registry}/v2/installs/${install.id}/builder/db/manifests/${build.artifact.digest}`,
      { headers: { accept: build.artifact.mediaType } },
    );
    expect(synced.status).toBe(200);

    // Tear it down: Terraform destroys for real, then the install is gone.
    const teardown = await send(url, 'DELETE', `/v1/installs/${install.id}`);
    expect(teardown.status).toBe(202);
    await ims.waitFor(new RegExp(`teardown of install ${install.id} (succeeded|ended.*)`));
    expect(ims.output()).toContain(`teardown of install ${install.id} succeeded`);
    expect((await send(url, 'GET', `/v1/installs/${install.id}`)).status).toBe(404);
    rmSync(repo, { recursive: true, force: true });
  });

  it('stops cleanly on Ctrl-C and keeps its data across a restart', async () => {
    expect(await stopLocal(ims)).toBe(0);
    expect(ims.output()).toContain('stopped.');
    await expect(fetch(`${url}/v1/health`)).rejects.toThrow();

    ({ ims, url } = await startLocal(dataDir));
    const apps = await send(url, 'GET', '/v1/apps');
    expect(apps.body.items.map((app: { name: string }) => app.name)).toEqual(['builder', 'shop']);
    expect(apps.body.items[1]).toMatchObject({ componentCount: 2, installCount: 1 });
  });

  it('refuses to start on a port already in use, with a clear message', async () => {
    const port = new URL(url).port;
    const second = spawnProject(['bin/local.ts'], {
      PORT: port,
      FERRY_DATA_DIR: mkdtempSync(join(tmpdir(), 'ferry-local-')),
    });
    expect(await second.exited()).toBe(1);
    expect(second.output()).toMatch(/ferry: .*(EADDRINUSE|in use)/);
  });
});
