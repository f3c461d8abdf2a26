import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { StateStore } from '../../lambda/domain/state-store';
import { RegistryClient } from '../../lambda/oci/client';
import { packageHelmChart } from '../../lambda/packaging/helm';
import type { InstallAccess } from '../../lambda/sync/access';
import { AccessDeniedError } from '../../lambda/sync/access';
import { SyncSteps } from '../../lambda/sync/steps';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { LocalInstallAccess, localInstallPrefix } from '../../local/install-access';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { runWorkflow } from '../../local/stepfunctions';
import { succeededBuild } from '../support/builds';
import { freshDomain } from '../support/control-plane';

let dynamo: LocalDynamoDb;
let tenantRegistry: LocalRegistry;
let installRegistry: LocalRegistry;
const root = mkdtempSync(join(tmpdir(), 'ferry-sync-'));

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

/** An app with one install and one succeeded build whose Helm chart artifact is in the tenant registry. */
async function installWithBuild() {
  const domain = await freshDomain(dynamo);
  const { controlPlane, builds, client, table } = domain;
  const app = (await controlPlane.createApp({ name: 'shop', inputs: [] }, 'tester')).value;
  const spec: ComponentSpec = {
    type: 'helm',
    chart: { kind: 'source', source: { repo: '/src', ref: 'main', path: '.' } },
    values: {},
    valuesFiles: [],
    namespace: 'default',
    dependsOn: [],
  };
  await controlPlane.putComponent(app.id, 'web', spec, 'tester');
  const install = (
    await controlPlane.createInstall(
      app.id,
      { accountId: '111122223333', region: 'eu-west-1', inputs: {} },
      'tester',
    )
  ).value;

  const chartDir = join(root, `chart-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(chartDir, 'templates'), { recursive: true });
  writeFileSync(join(chartDir, 'Chart.yaml'), 'apiVersion: v2\nname: web\nversion: 0.1.0\n');
  writeFileSync(join(chartDir, 'templates', 'svc.yaml'), `kind: Service # ${chartDir}\n`);
  const chart = await packageHelmChart(chartDir);
  const tenant = new RegistryClient({ registry: tenantRegistry.host, insecure: true });
  const buildId = await succeededBuild(builds, tenant, app, 'web', spec, {
    config: { mediaType: chart.configMediaType, bytes: chart.configBytes },
    layers: [{ mediaType: chart.layerMediaType, bytes: chart.layerBytes }],
  });
  const digest = (await builds.get(buildId)).artifact?.digest as string;
  const store = new StateStore({ client, table });
  return { ...domain, app, install, buildId, digest, store };
}

function stepsFor(domain: Awaited<ReturnType<typeof installWithBuild>>, access: InstallAccess) {
  return new SyncSteps({
    controlPlane: domain.controlPlane,
    builds: domain.builds,
    store: domain.store,
    tenantRegistry: async () => new RegistryClient({ registry: tenantRegistry.host, insecure: true }),
    access,
    destinationPrefix: localInstallPrefix,
  });
}

function runSync(steps: SyncSteps, input: { installId: string; buildId: string; releaseId: string }) {
  return runWorkflow('sync', input, {
    tasks: {
      PlanSync: (i) => steps.plan(i),
      CopyBlob: (i) => steps.copyBlob(i),
      FinishSync: (i) => steps.finish(i),
      RecordSyncFailure: (i) => steps.fail(i),
    },
  });
}

describe('sync workflow, run locally', () => {
  it("copies a build's artifact into the install's registry, tagged for the release, and records it", async () => {
    const domain = await installWithBuild();
    const access = new LocalInstallAccess(installRegistry.host);
    const input = { installId: domain.install.id, buildId: domain.buildId, releaseId: 'rel_01first' };
    const result = await runSync(stepsFor(domain, access), input);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.statesEntered).toEqual([
      'PlanSync',
      'NothingToSync',
      'CopyBlobs',
      'CopyBlob',
      'CopyBlob',
      'FinishSync',
    ]);
    const repository = `installs/${domain.install.id}/shop/web`;
    expect(result.output).toMatchObject({
      installId: domain.install.id,
      digest: domain.digest,
      destination: `${installRegistry.host}/${repository}@${domain.digest}`,
      blobs: 2,
      blobsCopied: 2,
    });
    // Each task opened the install itself, under a session naming the release.
    expect(new Set(access.sessions.map((session) => session.sessionName))).toEqual(
      new Set(['ferry-rel_01first']),
    );
    expect(access.sessions.length).toBeGreaterThanOrEqual(4);

    const tagged = await fetch(`${installRegistry.url}/v2/${repository}/manifests/rel_01first`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(tagged.headers.get('docker-content-digest')).toBe(domain.digest);

    const history = await domain.controlPlane.listInstallEvents(domain.install.id, {});
    expect(history.items[0]).toMatchObject({
      type: 'artifact.synced',
      data: {
        buildId: domain.buildId,
        releaseId: 'rel_01first',
        digest: domain.digest,
        tag: 'rel_01first',
        durationMs: expect.any(Number),
      },
    });

    // Again for another release: nothing left to copy, only the new tag.
    const again = await runSync(stepsFor(domain, access), { ...input, releaseId: 'rel_02second' });
    expect(again.output).toMatchObject({ blobsCopied: 0, blobs: 2 });
  });

  it('keeps credentials out of the workflow state, its output and the history', async () => {
    const domain = await installWithBuild();
    const secret = 'assumed-session-secret-value';
    const local = new LocalInstallAccess(installRegistry.host);
    const access: InstallAccess = {
      verify: (install, sessionName) => local.verify(install, sessionName),
      async openRegistry(install, sessionName) {
        const registry = await local.openRegistry(install, sessionName);
        // A client holding credentials, as the assumed-role one does.
        return {
          ...registry,
          client: new RegistryClient({
            registry: installRegistry.host,
            insecure: true,
            credentials: { username: 'AWS', password: secret },
          }),
        };
      },
    };
    const result = await runSync(stepsFor(domain, access), {
      installId: domain.install.id,
      buildId: domain.buildId,
      releaseId: 'rel_x',
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(JSON.stringify(result)).not.toContain(secret);
    const history = await domain.controlPlane.listInstallEvents(domain.install.id, {});
    expect(JSON.stringify(history)).not.toContain(secret);
    expect(JSON.stringify(history)).not.toContain(domain.install.externalId);
  });

  it('records a denied role in the install history and fails with the cause', async () => {
    const domain = await installWithBuild();
    const denied: InstallAccess = {
      verify: async () => ({ roleArn: 'unused' }),
      openRegistry: async (install) => {
        throw new AccessDeniedError(
          `cannot assume ferry.acme.${install.id} for install ${install.id} (account ${install.accountId}, ${install.region}): AccessDenied`,
        );
      },
    };
    const result = await runSync(stepsFor(domain, denied), {
      installId: domain.install.id,
      buildId: domain.buildId,
      releaseId: 'rel_denied',
    });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('SyncFailed');
    expect(result.cause).toMatch(
      /account 111122223333 \(eu-west-1\) failed: AccessDeniedError: cannot assume/,
    );
    const history = await domain.controlPlane.listInstallEvents(domain.install.id, {});
    expect(history.items[0]).toMatchObject({
      type: 'artifact.sync-failed',
      data: { releaseId: 'rel_denied', error: expect.any(String) },
    });
  });

  it('refuses to sync a build of another app or one that has not succeeded', async () => {
    const domain = await installWithBuild();
    const other = (
      await domain.builds.request(
        {
          appId: domain.app.id,
          appName: 'shop',
          component: 'web',
          componentVersion: 1,
          spec: (await domain.builds.get(domain.buildId)).spec,
        },
        'tester',
      )
    ).value;
    const result = await runSync(stepsFor(domain, new LocalInstallAccess(installRegistry.host)), {
      installId: domain.install.id,
      buildId: other.id,
      releaseId: 'rel_q',
    });
    expect(result.status).toBe('FAILED');
    expect(result.cause).toMatch(/is queued; only a succeeded build can be synced/);
  });
});
