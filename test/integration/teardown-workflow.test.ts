// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform interpolation, not JavaScript
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestroyRequest } from '../../lambda/deploy/platform';
import type { DeployRunner } from '../../lambda/deploy/steps';
import { TeardownSteps } from '../../lambda/deploy/teardown';
import { Deployments } from '../../lambda/domain/deployments';
import { NotFoundError } from '../../lambda/domain/errors';
import { InstallLock } from '../../lambda/domain/install-lock';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { StateStore } from '../../lambda/domain/state-store';
import { keys } from '../../lambda/domain/store';
import { RegistryClient } from '../../lambda/oci/client';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { LocalInstallAccess } from '../../local/install-access';
import { LocalPlatform } from '../../local/platform';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { deployInstallTasks, localDeploySteps, teardownInstallTasks } from '../../local/releases';
import { runWorkflow, type TaskHandler } from '../../local/stepfunctions';
import { helmChartArtifact, imageArtifact, succeededBuild, terraformModuleArtifact } from '../support/builds';
import { freshDomain } from '../support/control-plane';

let dynamo: LocalDynamoDb;
let tenantRegistry: LocalRegistry;
let installRegistry: LocalRegistry;
const root = mkdtempSync(join(tmpdir(), 'ferry-teardown-'));

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

/** The local platform, noting when each destroy starts and ends. */
class ObservedPlatform extends LocalPlatform {
  readonly events: string[] = [];

  override async destroy(request: DestroyRequest): Promise<void> {
    this.events.push(`start:${request.component}`);
    try {
      await super.destroy(request);
    } finally {
      this.events.push(`end:${request.component}`);
    }
  }
}

/** The teardown-install definition's Task states, mapped to the steps. */
/**
 * An app of five components with succeeded builds, and one install:
 * - `net`: a Terraform module applied for real; its `terraform_data` resource writes to the app's
 *   log when created and when destroyed; output `cluster`.
 * - `db`: a plugin whose deploy outputs an endpoint on net's cluster and whose destroy step
 *   (`dbDestroy`) gets net's cluster through a template.
 * - `api`: a service on net's cluster with db's endpoint; `site`: a chart naming api's image;
 *   `web`: a service that depends on nothing.
 */
async function shopWithBuilds(dbDestroy: string[]) {
  const domain = await freshDomain(dynamo);
  const { controlPlane, builds, client, table } = domain;
  const store = new StateStore({ client, table });
  const app = (
    await controlPlane.createApp(
      { name: 'shop', inputs: [{ name: 'domain', required: true, sensitive: false }] },
      't',
    )
  ).value;
  const log = join(root, `${app.id}.log`);
  const service = (cluster: string, environment: Record<string, string>) => ({
    cluster,
    subnets: ['subnet-1'],
    securityGroups: [],
    cpu: 256,
    memory: 512,
    port: 8080,
    desiredCount: 1,
    assignPublicIp: false,
    environment,
  });
  const db = (destroy: string[]): ComponentSpec => ({
    type: 'custom',
    plugin: {
      image: 'ghcr.io/acme/db-plugin:1',
      build: { commands: ['true'], environment: {} },
      deploy: {
        commands: ['echo "endpoint=db.$CLUSTER.internal" >> "$FERRY_OUTPUT_ENV"'],
        environment: { CLUSTER: '{{ components.net.outputs.cluster }}' },
      },
      destroy: {
        commands: destroy,
        environment: { CLUSTER: '{{ components.net.outputs.cluster }}', LOG: log },
      },
    },
    dependsOn: [],
  });
  const specs: Record<string, ComponentSpec> = {
    net: {
      type: 'terraform',
      source: { repo: '/src', ref: 'main', path: 'net' },
      terraformVersion: '1.9.8',
      variables: { name: '{{ install.id }}', log },
      environment: {},
      dependsOn: [],
    },
    db: db(dbDestroy),
    api: {
      type: 'image',
      image: { uri: 'docker.io/acme/api:1' },
      service: service('{{ components.net.outputs.cluster }}', {
        DB: '{{ components.db.outputs.endpoint }}',
      }),
      dependsOn: [],
    },
    site: {
      type: 'helm',
      chart: { kind: 'source', source: { repo: '/src', ref: 'main', path: 'chart' } },
      values: { image: '{{ components.api.image.uri }}' },
      valuesFiles: [],
      namespace: 'shop',
      dependsOn: [],
    },
    web: {
      type: 'image',
      image: { uri: 'docker.io/acme/web:1' },
      service: service('main', { DOMAIN: '{{ install.inputs.domain }}' }),
      dependsOn: [],
    },
  };
  for (const name of ['net', 'db', 'api', 'site', 'web']) {
    await controlPlane.putComponent(app.id, name, specs[name], 't');
  }
  const install = (
    await controlPlane.createInstall(
      app.id,
      { accountId: '111122223333', region: 'eu-west-1', inputs: { domain: 'shop.example.com' } },
      't',
    )
  ).value;

  const tenant = new RegistryClient({ registry: tenantRegistry.host, insecure: true });
  const chart = await helmChartArtifact(join(root, `chart-${app.id}`));
  const module = await terraformModuleArtifact(
    join(root, `module-${app.id}`),
    [
      'variable "name" {}',
      'variable "log" {}',
      'resource "terraform_data" "marker" {',
      '  input = { name = var.name, log = var.log }',
      '  provisioner "local-exec" {',
      '    command = "echo created net ${self.input.name} >> ${self.input.log}"',
      '  }',
      '  provisioner "local-exec" {',
      '    when    = destroy',
      '    command = "echo destroyed net ${self.input.name} >> ${self.input.log}"',
      '  }',
      '}',
      'output "cluster" { value = "main-${var.name}" }',
      '',
    ].join('\n'),
  );
  const artifactOf = (name: string) =>
    name === 'net' ? module : name === 'site' ? chart : imageArtifact(`${name} ${app.id}`);
  for (const name of Object.keys(specs)) {
    await succeededBuild(builds, tenant, app, name, specs[name], artifactOf(name));
  }
  const deployments = new Deployments(store);
  const lock = new InstallLock(store);
  const platformRoot = join(root, 'platform');
  const platform = new ObservedPlatform(platformRoot);
  const deploySteps = localDeploySteps({
    controlPlane,
    builds,
    deployments,
    lock,
    store,
    tenantRegistry: tenant,
    installAccess: new LocalInstallAccess(installRegistry.host),
    platform,
  });
  const teardownSteps = new TeardownSteps({ controlPlane, deployments, lock, store, platform });
  const installDir = join(platformRoot, install.id);
  return {
    ...domain,
    app,
    install,
    deployments,
    lock,
    store,
    platform,
    log,
    installDir,
    /** Puts `db` back with another destroy step. */
    replaceDbDestroy: (destroy: string[]) => controlPlane.putComponent(app.id, 'db', db(destroy), 't'),
    deploy: (deployId: string) =>
      runWorkflow(
        'deploy-install',
        { installId: install.id, deployId, builds: {} },
        { tasks: deployInstallTasks(deploySteps) },
      ),
    teardown: (teardownId: string) =>
      runWorkflow(
        'teardown-install',
        { installId: install.id, teardownId },
        { tasks: teardownInstallTasks(teardownSteps) },
      ),
    /** A teardown whose helm components go to a stand-in deploy runner, as in AWS. */
    teardownWithRunner: (teardownId: string, runner: DeployRunner, runDeployRunner: TaskHandler) =>
      runWorkflow(
        'teardown-install',
        { installId: install.id, teardownId },
        {
          tasks: teardownInstallTasks(
            new TeardownSteps({ controlPlane, deployments, lock, store, platform, runner }),
            runDeployRunner,
          ),
        },
      ),
  };
}

const DESTROY_DB = ['echo "destroyed db in $CLUSTER" >> "$LOG"'];
const DB_IN_USE = ['echo "cannot drop the database: 3 sessions are still open" >&2; exit 3'];
/** Dependant -> dependency, every edge of the shop's graph. */
const EDGES = [
  ['db', 'net'],
  ['api', 'net'],
  ['api', 'db'],
  ['site', 'api'],
];

const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n');
const terraformResources = (installDir: string) =>
  (
    JSON.parse(readFileSync(join(installDir, 'net', 'terraform.tfstate'), 'utf8')) as {
      resources: { type: string; name: string }[];
    }
  ).resources.map((resource) => `${resource.type}.${resource.name}`);

describe('teardown-install workflow, run locally', () => {
  it('removes dependants before their dependencies, destroys Terraform for real, and deletes the install', async () => {
    const shop = await shopWithBuilds(DESTROY_DB);
    expect((await shop.deploy('rel_01deploy')).status).toBe('SUCCEEDED');
    expect(terraformResources(shop.installDir)).toEqual(['terraform_data.marker']);
    expect(existsSync(join(shop.installDir, 'api', 'task-definition.json'))).toBe(true);
    const externalId = shop.install.externalId;

    const run = await shop.teardown('td_01down');

    expect(run.status).toBe('SUCCEEDED');
    expect(run.output).toMatchObject({
      summary: { ok: true, deleted: true, removed: 5, failed: 0, skipped: 0 },
    });
    // Dependants first: each component's destroy ended before any of its dependencies' began.
    const at = (event: string) => shop.platform.events.indexOf(event);
    for (const [dependant, dependency] of EDGES) {
      expect(at(`end:${dependant}`)).toBeGreaterThanOrEqual(0);
      expect(at(`end:${dependant}`)).toBeLessThan(at(`start:${dependency}`));
    }
    expect(shop.platform.events).toHaveLength(10);
    // The plugin's destroy step and Terraform's destroy ran for real, rendered as deployed.
    expect(lines(shop.log)).toEqual([
      `created net ${shop.install.id}`,
      `destroyed db in main-${shop.install.id}`,
      `destroyed net ${shop.install.id}`,
    ]);
    // Everything apply wrote is gone, Terraform's state with it.
    expect(existsSync(shop.installDir)).toBe(false);

    // The install is gone from the control plane, with its external id, records and lock…
    await expect(shop.controlPlane.getInstall(shop.install.id)).rejects.toThrow(NotFoundError);
    expect(await shop.store.get(keys.externalId(externalId))).toBeUndefined();
    expect(await shop.deployments.list(shop.install.id)).toEqual([]);
    expect(await shop.lock.holder(shop.install.id)).toBeUndefined();
    // …the app no longer counts it, so it may be deleted…
    expect((await shop.controlPlane.getApp(shop.app.id)).installCount).toBe(0);
    await expect(shop.controlPlane.deleteApp(shop.app.id, 't')).resolves.toBeUndefined();
    // …and its history stays readable: every component removed, then the install.
    const history = (await shop.controlPlane.listInstallEvents(shop.install.id, { limit: 100 })).items;
    expect(history[0]).toMatchObject({
      type: 'install.removed',
      actor: 'workflow:teardown-install',
      message: expect.stringContaining('removed by teardown td_01down: 5 component(s) removed'),
      data: { teardownId: 'td_01down', removed: 5, failed: 0, skipped: 0 },
    });
    const removed = history.filter((event) => event.type === 'component.removed');
    expect(removed.map((event) => event.data.component).sort()).toEqual(['api', 'db', 'net', 'site', 'web']);
    expect(removed.every((event) => event.data.releaseId === 'td_01down')).toBe(true);
  });

  it('keeps the dependencies of a component it cannot remove, says why, and finishes once that is fixed', async () => {
    const shop = await shopWithBuilds(DB_IN_USE);
    expect((await shop.deploy('rel_02deploy')).status).toBe('SUCCEEDED');

    const run = await shop.teardown('td_02down');

    expect(run).toMatchObject({ status: 'FAILED', error: 'TeardownFailed' });
    expect(run.cause).toMatch(
      new RegExp(
        `^teardown td_02down failed: 3 removed, 1 failed, 1 skipped; install ${shop.install.id} is kept ` +
          '\\(db: destroy: destroy command 1 of 1 exited with 3: cannot drop the database: 3 sessions are still open; ' +
          'net: kept because db was not removed in td_02down\\)$',
      ),
    );
    const records = Object.fromEntries(
      (await shop.deployments.list(shop.install.id)).map((record) => [record.component, record]),
    );
    for (const name of ['api', 'site', 'web']) {
      expect(records[name]).toMatchObject({ status: 'removed', releaseId: 'td_02down' });
    }
    expect(records.db).toMatchObject({
      status: 'failed',
      releaseId: 'td_02down',
      error: {
        step: 'destroy',
        account: '111122223333',
        region: 'eu-west-1',
        cause: expect.stringContaining('3 sessions are still open'),
      },
      // What it deployed is still recorded.
      outputs: { endpoint: `db.main-${shop.install.id}.internal` },
    });
    expect(records.net).toMatchObject({
      status: 'skipped',
      error: { step: 'dependants', cause: 'kept because db was not removed in td_02down' },
      outputs: { cluster: `main-${shop.install.id}` },
    });
    // net was never touched: its resource and state are intact; what was removed is gone.
    expect(shop.platform.events).not.toContain('start:net');
    expect(terraformResources(shop.installDir)).toEqual(['terraform_data.marker']);
    expect(lines(shop.log)).toEqual([`created net ${shop.install.id}`]);
    expect(existsSync(join(shop.installDir, 'api'))).toBe(false);
    expect(existsSync(join(shop.installDir, 'site'))).toBe(false);

    // The install stays, unlocked, and its history says why.
    await expect(shop.controlPlane.getInstall(shop.install.id)).resolves.toMatchObject({
      id: shop.install.id,
    });
    expect(await shop.lock.holder(shop.install.id)).toBeUndefined();
    const [latest] = (await shop.controlPlane.listInstallEvents(shop.install.id, { limit: 1 })).items;
    expect(latest).toMatchObject({
      type: 'install.teardown-failed',
      message: run.cause,
      data: {
        teardownId: 'td_02down',
        removed: 3,
        failed: 1,
        skipped: 1,
        failures: [
          { component: 'db', status: 'failed', cause: expect.stringContaining('sessions are still open') },
          { component: 'net', status: 'skipped', cause: 'kept because db was not removed in td_02down' },
        ],
      },
    });
    const messages = (await shop.controlPlane.listInstallEvents(shop.install.id, { limit: 10 })).items.map(
      (event) => event.message,
    );
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^component db could not be removed from install \S+ at destroy in 111122223333\/eu-west-1: /,
        ),
        `component net kept in install ${shop.install.id}: kept because db was not removed in td_02down`,
      ]),
    );

    // Once db can be dropped, a new teardown removes the rest, rendered from the outputs kept.
    await shop.replaceDbDestroy(DESTROY_DB);
    const again = await shop.teardown('td_03again');
    expect(again.status).toBe('SUCCEEDED');
    expect(lines(shop.log)).toEqual([
      `created net ${shop.install.id}`,
      `destroyed db in main-${shop.install.id}`,
      `destroyed net ${shop.install.id}`,
    ]);
    expect(existsSync(shop.installDir)).toBe(false);
    await expect(shop.controlPlane.getInstall(shop.install.id)).rejects.toThrow(NotFoundError);
  });

  it('hands helm components to the deploy runner to remove, and keeps what depends on a failed runner build', async () => {
    const shop = await shopWithBuilds(DESTROY_DB);
    expect((await shop.deploy('rel_01first')).status).toBe('SUCCEEDED');
    const prepared: { action?: string; component: string }[] = [];
    let failNext = true;
    const runner: DeployRunner = {
      handles: (spec) => spec.type === 'helm',
      prepare: async (request, action) => {
        prepared.push({ action, component: request.component });
        return {
          buildspec: 'version: 0.2',
          environment: [
            { Name: 'FERRY_RUNNER_INPUT', Value: `s3://b/inputs/${request.component}`, Type: 'PLAINTEXT' },
          ],
          image: 'runner:image',
          inputKey: `inputs/${request.component}`,
          outputsKey: `outputs/${request.component}`,
        };
      },
      finish: async () => ({ outputs: {} }),
      discard: async () => undefined,
    };
    const runDeployRunner: TaskHandler = async () => {
      if (failNext) {
        failNext = false;
        const failure = new Error(
          JSON.stringify({
            Build: {
              Id: 'runner:1',
              BuildStatus: 'FAILED',
              Phases: [
                {
                  PhaseType: 'BUILD',
                  PhaseStatus: 'FAILED',
                  Contexts: [{ Message: 'helm uninstall: timed out' }],
                },
              ],
            },
          }),
        );
        failure.name = 'States.TaskFailed';
        throw failure;
      }
      return { Build: { Id: 'runner:2', BuildStatus: 'SUCCEEDED' } };
    };

    const failed = await shop.teardownWithRunner('td_runner1', runner, runDeployRunner);
    expect(failed.status).toBe('FAILED');
    expect(prepared).toEqual([{ action: 'destroy', component: 'site' }]);
    const records = Object.fromEntries(
      (await shop.deployments.list(shop.install.id)).map((r) => [r.component, r]),
    );
    expect(records.site).toMatchObject({
      status: 'failed',
      error: {
        step: 'destroy',
        cause: "the deploy runner's build runner:1 FAILED in BUILD: helm uninstall: timed out",
      },
    });
    // What site depends on is kept; nothing else was touched.
    expect(records.api).toMatchObject({ status: 'skipped' });

    const again = await shop.teardownWithRunner('td_runner2', runner, runDeployRunner);
    expect(again.status).toBe('SUCCEEDED');
    await expect(shop.controlPlane.getInstall(shop.install.id)).rejects.toThrow(NotFoundError);
  });

  it('refuses a teardown while another deploy holds the install, naming it, and removes nothing', async () => {
    const shop = await shopWithBuilds(DESTROY_DB);
    expect((await shop.deploy('rel_04deploy')).status).toBe('SUCCEEDED');
    await shop.lock.acquire(shop.install.id, 'rel_other', 600);

    const run = await shop.teardown('td_04down');

    expect(run).toMatchObject({ status: 'FAILED', error: 'TeardownRefused' });
    expect(run.cause).toMatch(new RegExp(`install ${shop.install.id} is being deployed by rel_other since`));
    expect(shop.platform.events).toEqual([]);
    expect(
      (await shop.deployments.list(shop.install.id)).every((record) => record.status === 'deployed'),
    ).toBe(true);
    expect(terraformResources(shop.installDir)).toEqual(['terraform_data.marker']);
    expect((await shop.lock.holder(shop.install.id))?.owner).toBe('rel_other');
    await expect(shop.controlPlane.getInstall(shop.install.id)).resolves.toMatchObject({
      id: shop.install.id,
    });
  });

  it('deletes an install that never deployed anything, and refuses one that does not exist', async () => {
    const shop = await shopWithBuilds(DESTROY_DB);

    const run = await shop.teardown('td_05down');

    expect(run.status).toBe('SUCCEEDED');
    expect(run.output).toMatchObject({ summary: { ok: true, deleted: true, removed: 0 } });
    await expect(shop.controlPlane.getInstall(shop.install.id)).rejects.toThrow(NotFoundError);

    const again = await shop.teardown('td_06again');
    expect(again).toMatchObject({ status: 'FAILED', error: 'TeardownRefused' });
    expect(again.cause).toBe(`install ${shop.install.id} does not exist`);
    expect(await shop.lock.holder(shop.install.id)).toBeUndefined();
  });

  it('deletes an install only once every component is removed and while the teardown holds its lock', async () => {
    const { controlPlane, deployments, client, table } = await freshDomain(dynamo);
    const lock = new InstallLock(new StateStore({ client, table }));
    const app = (await controlPlane.createApp({ name: 'shop', inputs: [] }, 't')).value;
    const install = (
      await controlPlane.createInstall(
        app.id,
        { accountId: '111122223333', region: 'eu-west-1', inputs: {} },
        't',
      )
    ).value;
    await deployments.record(install.id, app.id, 'web', { status: 'deployed', releaseId: 'rel_1' }, 't');

    await expect(controlPlane.deleteInstall(install.id, 't', { lockOwner: 'td_1' })).rejects.toMatchObject({
      code: 'InstallHasComponents',
      message: expect.stringContaining('web (deployed)'),
    });
    await deployments.record(install.id, app.id, 'web', { status: 'removed', releaseId: 'td_1' }, 't');
    await lock.acquire(install.id, 'rel_2', 600);
    await expect(controlPlane.deleteInstall(install.id, 't', { lockOwner: 'td_1' })).rejects.toMatchObject({
      code: 'InstallLocked',
      message: expect.stringContaining('is no longer locked by td_1 (held by rel_2 since'),
    });
    await expect(controlPlane.deleteInstall(install.id, 't')).rejects.toMatchObject({
      code: 'InstallLocked',
    });
    // Nothing was written by the refusals.
    expect((await controlPlane.getApp(app.id)).installCount).toBe(1);
    await expect(controlPlane.getInstall(install.id)).resolves.toMatchObject({ version: install.version });

    await lock.release(install.id, 'rel_2');
    await controlPlane.deleteInstall(install.id, 't');
    await expect(controlPlane.getInstall(install.id)).rejects.toThrow(NotFoundError);
    expect((await controlPlane.getApp(app.id)).installCount).toBe(0);
    const [deleted] = (await controlPlane.listInstallEvents(install.id, { limit: 1 })).items;
    expect(deleted).toMatchObject({ type: 'install.deleted', data: { accountId: '111122223333' } });
  });
});
