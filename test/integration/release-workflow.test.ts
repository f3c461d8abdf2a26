import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiHandler } from '../../lambda/api/app';
import type { Install } from '../../lambda/domain/control-plane';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { StateStore } from '../../lambda/domain/state-store';
import { RegistryClient } from '../../lambda/oci/client';
import { ReleaseSteps } from '../../lambda/release/steps';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { LocalInstallAccess } from '../../local/install-access';
import { LocalPlatform } from '../../local/platform';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { localReleaseRuntime } from '../../local/releases';
import { apiClient } from '../support/api-client';
import { imageArtifact, succeededBuild } from '../support/builds';
import { freshDomain } from '../support/control-plane';

let dynamo: LocalDynamoDb;
let tenantRegistry: LocalRegistry;
let installRegistry: LocalRegistry;
const root = mkdtempSync(join(tmpdir(), 'ferry-release-'));

beforeAll(async () => {
  [dynamo, tenantRegistry, installRegistry] = await Promise.all([
    startDynamoDb(),
    startRegistry(),
    startRegistry(),
  ]);
});
afterAll(async () => {
  await Promise.all([dynamo.stop(), tenantRegistry.stop(), installRegistry.stop()]);
  rmSync(root, { recursive: true, force: true });
});

/**
 * An app of two components (an image synced into each install for real, and a prebuilt chart
 * whose values name the image), `installCount` local installs, a succeeded build of each
 * component, and the API serving it with local releases.
 */
async function fleet(installCount: number, runtimeOptions: { maxWavesPerExecution?: number } = {}) {
  const domain = await freshDomain(dynamo);
  const { controlPlane, builds, client, table } = domain;
  const store = new StateStore({ client, table });
  const app = (await controlPlane.createApp({ name: 'shop', inputs: [] }, 't')).value;
  const specs: Record<string, ComponentSpec> = {
    web: { type: 'image', image: { uri: 'docker.io/acme/web:1' }, dependsOn: [] },
    site: {
      type: 'helm',
      chart: { kind: 'prebuilt', repo: 'https://charts.example.com', name: 'site', version: '1.2.3' },
      values: { image: '{{ components.web.image.uri }}' },
      valuesFiles: [],
      namespace: 'shop',
      dependsOn: [],
    },
  };
  const tenant = new RegistryClient({ registry: tenantRegistry.host, insecure: true });
  const buildIds: Record<string, string> = {};
  for (const [name, spec] of Object.entries(specs)) {
    await controlPlane.putComponent(app.id, name, spec, 't');
    buildIds[name] = await succeededBuild(
      builds,
      tenant,
      app,
      name,
      spec,
      name === 'site'
        ? { chart: { repo: 'https://charts.example.com', name: 'site', version: '1.2.3' } }
        : imageArtifact(`web ${app.id}`),
    );
  }
  const installs: Install[] = [];
  for (let i = 0; i < installCount; i++) {
    installs.push(
      (
        await controlPlane.createInstall(
          app.id,
          { name: `customer-${i}`, accountId: String(100000000000 + i), region: 'eu-west-1', inputs: {} },
          't',
        )
      ).value,
    );
  }
  const installAccess = new LocalInstallAccess(installRegistry.host);
  const runtime = localReleaseRuntime({
    controlPlane,
    builds,
    store,
    tenantRegistry: tenant,
    installAccess,
    platform: new LocalPlatform(join(root, app.id)),
    ...runtimeOptions,
  });
  const call = apiClient(
    createApiHandler({
      ...domain,
      tenant: 'acme',
      deployments: runtime.deployments,
      releases: runtime.releases,
      releaseStarter: runtime.releaseRunner,
      teardownStarter: runtime.teardownRunner,
    }),
  );
  const settled = async () => {
    await runtime.releaseRunner.idle();
    await runtime.executions.idle();
  };
  /** Every install of a release, every page. */
  const releaseInstalls = async (releaseId: string) => {
    const all: { installId: string; wave: number; status: string; cause?: string }[] = [];
    let nextToken: string | undefined;
    do {
      const page = await call('GET', `/v1/releases/${releaseId}`, {
        query: { limit: '100', ...(nextToken && { nextToken }) },
      });
      expect(page.status).toBe(200);
      all.push(...page.body.installs.items);
      nextToken = page.body.installs.nextToken;
    } while (nextToken);
    return all;
  };
  return {
    ...domain,
    app,
    installs,
    buildIds,
    installAccess,
    runtime,
    call,
    settled,
    releaseInstalls,
    store,
  };
}

describe('releases, run locally through the release and deploy-install workflows', () => {
  it('stops after the wave that breaks the tolerance, and explains every install', async () => {
    const shop = await fleet(50);
    // Wave 2 holds installs 10-19: two of them refuse the IMS.
    const denied = [shop.installs[12].id, shop.installs[17].id];
    for (const id of denied) shop.installAccess.denied.add(id);

    const created = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: { installs: 'all', strategy: { waveSize: 10, pauseSeconds: 0, maxFailures: 1 } },
    });
    expect(created.status).toBe(202);
    expect(created.headers.Location ?? created.headers.location).toBe(`/v1/releases/${created.body.id}`);
    expect(created.body).toMatchObject({
      status: 'running',
      installCount: 50,
      waveSize: 10,
      waveCount: 5,
      builds: shop.buildIds,
    });
    await shop.settled();

    const release = (await shop.call('GET', `/v1/releases/${created.body.id}`)).body;
    expect(release.status).toBe('stopped');
    expect(release.wavesRun).toBe(2);
    expect(release.counts).toEqual({
      pending: 0,
      deploying: 0,
      succeeded: 18,
      failed: 2,
      cancelled: 0,
      skipped: 30,
    });
    expect(release.reason).toBe(
      '2 of 20 installs failed, more than the 1 tolerated; waves 3-5 (30 installs) not started',
    );

    const installs = await shop.releaseInstalls(created.body.id);
    expect(installs).toHaveLength(50);
    expect(installs.map((install) => install.installId)).toEqual(shop.installs.map((install) => install.id));
    for (const [index, install] of installs.entries()) {
      expect(install.wave).toBe(Math.floor(index / 10) + 1);
      if (denied.includes(install.installId)) {
        expect(install.status).toBe('failed');
        expect(install.cause).toMatch(/deploy rel_\w+ failed: 0 deployed, 1 failed, 1 skipped/);
      } else if (index < 20) {
        expect(install).toMatchObject({ status: 'succeeded' });
        expect(install.cause).toBeUndefined();
      } else {
        expect(install).toMatchObject({
          status: 'skipped',
          cause: `not started: ${release.reason}`,
        });
      }
    }

    // What each install holds says the same: deployed, failed with the cause, or untouched.
    const deployed = async (install: Install) =>
      (await shop.call('GET', `/v1/installs/${install.id}/components`)).body.items;
    const ok = await deployed(shop.installs[3]);
    expect(ok.map((c: { component: string; status: string }) => [c.component, c.status])).toEqual([
      ['site', 'deployed'],
      ['web', 'deployed'],
    ]);
    expect(ok.every((c: { releaseId: string }) => c.releaseId === created.body.id)).toBe(true);
    const failed = await deployed(shop.installs[12]);
    expect(failed.find((c: { component: string }) => c.component === 'web')).toMatchObject({
      status: 'failed',
      error: { step: 'sync', account: shop.installs[12].accountId, region: 'eu-west-1' },
    });
    expect(failed.find((c: { component: string }) => c.component === 'web').error.cause).toMatch(/denied/);
    expect(failed.find((c: { component: string }) => c.component === 'site')).toMatchObject({
      status: 'skipped',
    });
    expect(await deployed(shop.installs[30])).toEqual([]);

    // The app's history tells the release's story.
    const events = (
      await shop.call('GET', `/v1/apps/${shop.app.id}/events`, { query: { limit: '100' } })
    ).body.items
      .filter((event: { type: string }) => event.type.startsWith('release.'))
      .map((event: { type: string; message: string }) => event.type)
      .reverse();
    expect(events).toEqual([
      'release.created',
      'release.wave-started',
      'release.wave-started',
      'release.stopped',
    ]);
  });

  it('goes on through every wave while failures stay within a percentage, then retries the failed installs', async () => {
    const shop = await fleet(50);
    const denied = [shop.installs[12].id, shop.installs[17].id];
    for (const id of denied) shop.installAccess.denied.add(id);

    const created = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: { installs: 'all', strategy: { wavePercent: 20, pauseSeconds: 0, maxFailurePercent: 10 } },
    });
    expect(created.status).toBe(202);
    await shop.settled();
    const release = (await shop.call('GET', `/v1/releases/${created.body.id}`)).body;
    expect(release).toMatchObject({ status: 'partially-succeeded', wavesRun: 5, waveSize: 10 });
    expect(release.counts).toMatchObject({ succeeded: 48, failed: 2, skipped: 0, pending: 0 });
    expect(release.reason).toBe('all 5 waves ran; 2 of 50 installs failed (4%), within the 10% tolerated');

    // A retry before the cause is fixed would fail again; fix it, then retry.
    for (const id of denied) shop.installAccess.denied.delete(id);
    const retried = await shop.call('POST', `/v1/releases/${created.body.id}/retry`);
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({
      retryOf: created.body.id,
      installCount: 2,
      builds: release.builds,
      strategy: release.strategy,
    });
    await shop.settled();
    const retry = (await shop.call('GET', `/v1/releases/${retried.body.id}`)).body;
    expect(retry.status).toBe('succeeded');
    expect(retry.installs.items.map((install: { installId: string }) => install.installId)).toEqual(denied);

    // Nothing left to retry in a release that succeeded, and a running one cannot be retried.
    expect((await shop.call('POST', `/v1/releases/${retried.body.id}/retry`)).body.error.code).toBe(
      'NothingToRetry',
    );
    const listed = (await shop.call('GET', `/v1/apps/${shop.app.id}/releases`)).body.items;
    expect(listed.map((r: { id: string }) => r.id)).toEqual([retried.body.id, created.body.id]);
  });

  it('cancels: no wave starts after the request, and the installs never reached say so', async () => {
    const shop = await fleet(20);
    const created = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: {
        installs: shop.installs.map((i) => i.id),
        strategy: { waveSize: 5, pauseSeconds: 0, maxFailures: 0 },
      },
    });
    const cancelled = await shop.call('POST', `/v1/releases/${created.body.id}/cancel`);
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.status).toBe('cancelling');
    expect((await shop.call('POST', `/v1/releases/${created.body.id}/cancel`)).body.status).toBe(
      'cancelling',
    );
    await shop.settled();

    const release = (await shop.call('GET', `/v1/releases/${created.body.id}`)).body;
    expect(release.status).toBe('cancelled');
    expect(release.counts.succeeded).toBe(release.wavesRun * 5);
    expect(release.counts.cancelled).toBe(20 - release.wavesRun * 5);
    for (const install of await shop.releaseInstalls(created.body.id)) {
      if (install.status === 'cancelled')
        expect(install.cause).toMatch(/^not started: release cancelled by arn:/);
      else expect(install.status).toBe('succeeded');
    }
    const again = await shop.call('POST', `/v1/releases/${created.body.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('ReleaseFinished');
  });

  it('hands a long release over to fresh executions, so none grows past its history limit', async () => {
    const shop = await fleet(10, { maxWavesPerExecution: 2 });
    const created = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: { installs: 'all', strategy: { waveSize: 2, pauseSeconds: 0, maxFailures: 0 } },
    });
    await shop.settled();
    const release = (await shop.call('GET', `/v1/releases/${created.body.id}`)).body;
    expect(release).toMatchObject({ status: 'succeeded', wavesRun: 5 });
    expect(release.counts.succeeded).toBe(10);
    const runs = shop.runtime.releaseRunner.runs;
    expect([...runs.keys()].sort()).toEqual(
      [created.body.id, `${created.body.id}-from-wave-3`, `${created.body.id}-from-wave-5`].sort(),
    );
    const ran = (name: string) => runs.get(name)?.statesEntered.filter((state) => state === 'RunWave').length;
    expect([
      ran(created.body.id),
      ran(`${created.body.id}-from-wave-3`),
      ran(`${created.body.id}-from-wave-5`),
    ]).toEqual([2, 2, 1]);
  });

  it('refuses a bad request with every problem, and records nothing', async () => {
    const shop = await fleet(2);
    const otherApp = (await shop.controlPlane.createApp({ name: 'other', inputs: [] }, 't')).value;
    const otherInstall = (
      await shop.controlPlane.createInstall(
        otherApp.id,
        { accountId: '999988887777', region: 'eu-west-1', inputs: {} },
        't',
      )
    ).value;
    const response = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: {
        builds: { web: shop.buildIds.site, nope: 'build_x' },
        components: ['ghost'],
        installs: [shop.installs[0].id, 'ins_missing', otherInstall.id],
        strategy: { waveSize: 2, wavePercent: 50, pauseSeconds: 0, maxFailures: 0 },
      },
    });
    expect(response.status).toBe(400);
    expect(response.body.error.details).toEqual([
      { path: 'body.strategy.wavePercent', message: 'give either waveSize or wavePercent, not both' },
      {
        path: 'body.builds.web',
        message: `build ${shop.buildIds.site} is a build of site, not of web in this app`,
      },
      { path: 'body.builds.nope', message: 'the app has no component nope' },
      { path: 'body.components[0]', message: 'the app has no component ghost' },
      { path: 'body.installs[1]', message: 'install ins_missing does not exist' },
      { path: 'body.installs[2]', message: `install ${otherInstall.id} is an install of another app` },
    ]);
    const malformed = await shop.call('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: { installs: [shop.installs[0].id, shop.installs[0].id], strategy: { pauseSeconds: -1 } },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.details.map((d: { path: string }) => d.path)).toEqual([
      'body.installs',
      'body.strategy.pauseSeconds',
    ]);
    expect((await shop.call('GET', `/v1/apps/${shop.app.id}/releases`)).body.items).toEqual([]);
    expect(shop.runtime.releaseRunner.runs.size).toBe(0);
  });

  it('records a release whose workflow cannot start as failed, saying why', async () => {
    const shop = await fleet(1);
    const api = apiClient(
      createApiHandler({
        ...(await freshDomainFor(shop)),
        releaseStarter: {
          start: async () => {
            throw new Error('ExecutionLimitExceeded');
          },
        },
      }),
    );
    const created = await api('POST', `/v1/apps/${shop.app.id}/releases`, {
      body: { installs: 'all', strategy: { waveSize: 1, pauseSeconds: 0, maxFailures: 0 } },
    });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({
      status: 'failed',
      reason: 'the release workflow did not start: ExecutionLimitExceeded',
      counts: { skipped: 1, pending: 0 },
    });
  });

  it('reconciles a wave whose deploys stopped reporting, and counts every report once', async () => {
    const shop = await fleet(3);
    const release = (
      await shop.runtime.releases.create(
        {
          appId: shop.app.id,
          builds: shop.buildIds,
          strategy: { waveSize: 3, pauseSeconds: 0, maxFailures: 5 },
          installIds: shop.installs.map((i) => i.id),
        },
        't',
      )
    ).value;
    const woken: string[] = [];
    const steps = new ReleaseSteps({
      releases: shop.runtime.releases,
      store: shop.store,
      // Executions that start, then die without a word.
      executions: {
        start: async () => undefined,
        describe: async (name) =>
          name.endsWith(shop.installs[0].id)
            ? { status: 'TIMED_OUT', cause: 'the execution timed out' }
            : { status: 'RUNNING' },
      },
      notifier: { succeed: async (token) => void woken.push(token) },
    });
    expect(await steps.decide({ releaseId: release.id })).toMatchObject({ action: 'next-wave', wave: 1 });
    await steps.runWave({ releaseId: release.id, wave: 1, taskToken: 'token-1' });
    expect(woken).toEqual([]);

    // The same report twice counts once.
    const summary = { ok: true, message: 'deployed' };
    await steps.report({
      installId: shop.installs[2].id,
      release: { releaseId: release.id, wave: 1 },
      summary,
    });
    await steps.report({
      installId: shop.installs[2].id,
      release: { releaseId: release.id, wave: 1 },
      summary,
    });
    expect((await shop.runtime.releases.get(release.id)).counts).toMatchObject({
      succeeded: 1,
      deploying: 2,
    });

    // The wave's time ran out: the two silent installs are recorded with what became of them.
    expect(await steps.reconcileWave({ releaseId: release.id, wave: 1 })).toEqual({ reconciled: 2 });
    expect(woken).toEqual(['token-1']);
    const installs = await shop.runtime.releases.waveInstalls(release.id, 1);
    expect(installs.map((i) => [i.status, i.cause])).toEqual(
      expect.arrayContaining([
        ['failed', expect.stringMatching(/ended TIMED_OUT without reporting: the execution timed out$/)],
        ['failed', expect.stringMatching(/was still running when the wave's time ran out$/)],
        ['succeeded', undefined],
      ]),
    );
    expect(await steps.decide({ releaseId: release.id, wavesInExecution: 1 })).toMatchObject({
      action: 'done',
    });
    expect(
      await steps.finish({ releaseId: release.id, decision: { action: 'done', reason: 'all ran' } }),
    ).toEqual({
      status: 'partially-succeeded',
      ok: false,
      message: `release ${release.id} partially-succeeded: all ran`,
    });
  });
});

/** The API's dependencies for a fleet, to swap one of them. */
async function freshDomainFor(shop: Awaited<ReturnType<typeof fleet>>) {
  return {
    tenant: 'acme',
    controlPlane: shop.controlPlane,
    builds: shop.builds,
    buildStarter: shop.buildStarter,
    installAccess: shop.installAccess,
    accessTemplate: shop.accessTemplate,
    deployments: shop.runtime.deployments,
    releases: shop.runtime.releases,
    releaseStarter: shop.runtime.releaseRunner,
    teardownStarter: shop.runtime.teardownRunner,
  };
}
