import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { RunnerJob } from '../../lambda/deploy/runner-platform';
import type { DeployRunner, DeploySteps } from '../../lambda/deploy/steps';
import { TeardownSteps } from '../../lambda/deploy/teardown';
import { Deployments } from '../../lambda/domain/deployments';
import { InstallLock } from '../../lambda/domain/install-lock';
import type { ComponentSpec } from '../../lambda/domain/schemas';
import { LocalSealer } from '../../lambda/domain/secrets';
import { StateStore } from '../../lambda/domain/state-store';
import { RegistryClient } from '../../lambda/oci/client';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { LocalInstallAccess } from '../../local/install-access';
import { LocalPlatform } from '../../local/platform';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { deployInstallTasks, localDeploySteps, teardownInstallTasks } from '../../local/releases';
import { runWorkflow, type TaskHandler } from '../../local/stepfunctions';
import { helmChartArtifact, imageArtifact, succeededBuild, terraformModuleArtifact } from '../support/builds';
import { freshDomain } from '../support/control-plane';

const hasBinary = (name: string) => {
  try {
    execFileSync(name, ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

let dynamo: LocalDynamoDb;
let tenantRegistry: LocalRegistry;
let installRegistry: LocalRegistry;
const root = mkdtempSync(join(tmpdir(), 'ferry-deploy-'));

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
 * An app of four components and one install: `db` (terraform, which cannot apply here: there is
 * no terraform binary), `api` (needs db's output), `web` (independent) and `site` (a chart whose
 * values name web's image). Every component has a succeeded build in the tenant registry.
 */
async function shopWithBuilds(runner?: DeployRunner) {
  const domain = await freshDomain(dynamo);
  const { controlPlane, builds, client, table } = domain;
  const store = new StateStore({ client, table });
  const app = (
    await controlPlane.createApp(
      { name: 'shop', inputs: [{ name: 'domain', required: true, sensitive: false }] },
      't',
    )
  ).value;
  const service = (environment: Record<string, string>) => ({
    cluster: 'main',
    subnets: ['subnet-1'],
    securityGroups: [],
    cpu: 256,
    memory: 512,
    port: 8080,
    desiredCount: 1,
    assignPublicIp: false,
    environment,
  });
  const specs: Record<string, ComponentSpec> = {
    db: {
      type: 'terraform',
      source: { repo: '/src', ref: 'main', path: 'db' },
      terraformVersion: '1.9.8',
      variables: { name: '{{ install.id }}' },
      environment: {},
      dependsOn: [],
    },
    api: {
      type: 'image',
      image: { uri: 'docker.io/acme/api:1' },
      service: service({ DB: '{{ components.db.outputs.endpoint }}' }),
      dependsOn: [],
    },
    web: {
      type: 'image',
      image: { uri: 'docker.io/acme/web:1' },
      service: service({ DOMAIN: '{{ install.inputs.domain }}', REGION: '{{ install.region }}' }),
      dependsOn: [],
    },
    site: {
      type: 'helm',
      chart: { kind: 'source', source: { repo: '/src', ref: 'main', path: 'chart' } },
      values: { image: '{{ components.web.image.uri }}', digest: '{{ components.web.image.digest }}' },
      valuesFiles: [],
      namespace: 'shop',
      dependsOn: [],
    },
    hook: {
      type: 'custom',
      plugin: {
        image: 'ghcr.io/acme/hook:1',
        build: { commands: ['true'], environment: {} },
        deploy: { commands: ['echo "the hook refused: quota exceeded" >&2; exit 3'], environment: {} },
      },
      dependsOn: [],
    },
    after: { type: 'image', image: { uri: 'docker.io/acme/after:1' }, dependsOn: ['hook'] },
  };
  for (const name of ['db', 'web', 'api', 'site', 'hook', 'after']) {
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
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform interpolation, not JavaScript
    'variable "name" {}\noutput "endpoint" { value = "db.${var.name}.internal" }\n',
  );
  const artifactOf = (name: string) =>
    name === 'db' ? module : name === 'site' ? chart : imageArtifact(`${name} ${app.id}`);
  const buildIds: Record<string, string> = {};
  for (const name of Object.keys(specs)) {
    const id = await succeededBuild(builds, tenant, app, name, specs[name], artifactOf(name));
    buildIds[name] = id;
  }
  const deployments = new Deployments(store);
  const lock = new InstallLock(store);
  const steps = localDeploySteps({
    controlPlane,
    builds,
    deployments,
    lock,
    store,
    tenantRegistry: tenant,
    installAccess: new LocalInstallAccess(installRegistry.host),
    platform: new LocalPlatform(join(root, 'platform')),
    runner,
  });
  return { ...domain, app, install, buildIds, deployments, lock, steps, store };
}

function deploy(
  steps: DeploySteps,
  input: { installId: string; deployId: string; builds: Record<string, string> },
  runDeployRunner?: TaskHandler,
) {
  return runWorkflow('deploy-install', input, {
    tasks: deployInstallTasks(steps, undefined, runDeployRunner),
  });
}

/**
 * A deploy runner standing in for CodeBuild: it applies helm and custom components from the input
 * object alone (as the real build does), or fails the way a CodeBuild build fails.
 */
function standInRunner() {
  const objects = new Map<string, string>();
  const started: unknown[] = [];
  const runner: DeployRunner = {
    handles: (spec) => spec.type === 'helm' || spec.type === 'custom',
    prepare: async (request) => {
      const inputKey = `inputs/${request.deployId}/${request.component}.json`;
      objects.set(
        inputKey,
        JSON.stringify({
          component: request.component,
          externalId: request.install.externalId,
          spec: request.spec,
        }),
      );
      return {
        buildspec: 'version: 0.2',
        environment: [{ Name: 'FERRY_RUNNER_INPUT', Value: inputKey, Type: 'PLAINTEXT' }],
        image: 'runner:image',
        inputKey,
        outputsKey: inputKey.replace('inputs/', 'outputs/'),
      };
    },
    finish: async (job: RunnerJob) => {
      const outputs = objects.get(job.outputsKey);
      objects.delete(job.inputKey);
      if (!outputs) throw new Error(`no outputs at ${job.outputsKey}`);
      return JSON.parse(outputs);
    },
    discard: async (job: RunnerJob) => void objects.delete(job.inputKey),
  };
  const runDeployRunner: TaskHandler = async (request: {
    ProjectName: string;
    EnvironmentVariablesOverride: { Name: string; Value: string }[];
  }) => {
    started.push(request);
    const key = request.EnvironmentVariablesOverride[0].Value;
    const input = JSON.parse(objects.get(key) ?? '{}');
    if (input.component === 'hook') {
      const failure = new Error(
        JSON.stringify({
          Build: {
            Id: 'runner:hook-1',
            BuildStatus: 'FAILED',
            Phases: [
              { PhaseType: 'INSTALL', PhaseStatus: 'SUCCEEDED' },
              {
                PhaseType: 'BUILD',
                PhaseStatus: 'FAILED',
                Contexts: [{ Message: 'COMMAND_EXECUTION_ERROR: exit status 3' }],
              },
            ],
            Logs: { DeepLink: 'https://console.example/logs/hook-1' },
          },
        }),
      );
      failure.name = 'States.TaskFailed';
      throw failure;
    }
    objects.set(
      key.replace('inputs/', 'outputs/'),
      JSON.stringify({ outputs: { release: input.component, token: 's3cr3t' }, sensitiveOutputs: ['token'] }),
    );
    return { Build: { Id: `runner:${input.component}-1`, BuildStatus: 'SUCCEEDED', Phases: [] } };
  };
  return { runner, runDeployRunner, objects, started };
}

describe('deploy-install workflow, run locally', () => {
  it('renders sensitive inputs and sensitive outputs into dependants, and stores neither in clear', async () => {
    const domain = await freshDomain(dynamo);
    const { controlPlane, builds, client, table } = domain;
    const store = new StateStore({ client, table });
    const app = (
      await controlPlane.createApp(
        { name: 'vault', inputs: [{ name: 'db_password', required: true, sensitive: true }] },
        't',
      )
    ).value;
    const specs: Record<string, ComponentSpec> = {
      db: {
        type: 'terraform',
        source: { repo: '/src', ref: 'main', path: 'db' },
        terraformVersion: '1.11.4',
        variables: { password: '{{ install.inputs.db_password }}' },
        environment: {},
        dependsOn: [],
      },
      api: {
        type: 'image',
        image: { uri: 'docker.io/acme/api:1' },
        service: {
          cluster: 'main',
          subnets: ['subnet-1'],
          securityGroups: [],
          cpu: 256,
          memory: 512,
          desiredCount: 1,
          assignPublicIp: false,
          environment: { DSN: '{{ components.db.outputs.dsn }}' },
        },
        dependsOn: [],
      },
    };
    const module = await terraformModuleArtifact(
      join(root, `vault-${app.id}`),
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform interpolation, not JavaScript
      'variable "password" { sensitive = true }\noutput "dsn" {\n  value     = "postgres://app:${var.password}@db"\n  sensitive = true\n}\n',
    );
    const tenant = new RegistryClient({ registry: tenantRegistry.host, insecure: true });
    for (const name of ['db', 'api']) {
      await controlPlane.putComponent(app.id, name, specs[name], 't');
      await succeededBuild(
        builds,
        tenant,
        app,
        name,
        specs[name],
        name === 'db' ? module : imageArtifact(`api ${app.id}`),
      );
    }
    const install = (
      await controlPlane.createInstall(
        app.id,
        { accountId: '111122223333', region: 'eu-west-1', inputs: { db_password: 'pa55-w0rd' } },
        't',
      )
    ).value;
    const deployments = new Deployments(store);
    const lock = new InstallLock(store);
    const platform = new LocalPlatform(join(root, 'vault-platform'));
    const sealer = new LocalSealer(randomBytes(32));
    const steps = localDeploySteps({
      controlPlane,
      builds,
      deployments,
      lock,
      store,
      tenantRegistry: tenant,
      installAccess: new LocalInstallAccess(installRegistry.host),
      platform,
      sealer,
    });
    const result = await deploy(steps, { installId: install.id, deployId: 'rel_01vault', builds: {} });
    if (!hasBinary('terraform')) {
      expect(result.status).toBe('FAILED');
      return;
    }
    expect(result.status).toBe('SUCCEEDED');
    const taskDefinition = JSON.parse(
      readFileSync(join(root, 'vault-platform', install.id, 'api', 'task-definition.json'), 'utf8'),
    );
    expect(taskDefinition.containerDefinitions[0].environment).toEqual([
      { name: 'DSN', value: 'postgres://app:pa55-w0rd@db' },
    ]);
    const db = (await deployments.list(install.id)).find((record) => record.component === 'db');
    expect(db).toMatchObject({ status: 'deployed', sensitiveOutputs: ['dsn'], outputs: {} });
    expect(db).not.toHaveProperty('sealedOutputs');
    // Nothing in the table holds either secret in clear.
    const items = JSON.stringify((await client.send(new ScanCommand({ TableName: table }))).Items ?? []);
    expect(items).not.toContain('pa55-w0rd');
    expect(items).toContain('"sealedOutputs"');

    // Tearing down renders with the same secrets: Terraform destroys with the password it needs.
    const teardown = await runWorkflow(
      'teardown-install',
      { installId: install.id, teardownId: 'td_01vault' },
      {
        tasks: teardownInstallTasks(
          new TeardownSteps({ controlPlane, deployments, lock, store, platform, sealer }),
        ),
      },
    );
    expect(teardown.status).toBe('SUCCEEDED');
    await expect(controlPlane.getInstall(install.id)).rejects.toThrow(/does not exist/);
  });

  it('hands helm and plugin components to the deploy runner, and records what its builds did', async () => {
    const stand = standInRunner();
    const shop = await shopWithBuilds(stand.runner);
    const result = await deploy(
      shop.steps,
      { installId: shop.install.id, deployId: 'rel_01runner', builds: {} },
      stand.runDeployRunner,
    );
    expect(result.status).toBe('FAILED');
    expect(result.statesEntered.filter((state) => state === 'RunDeployRunner')).toHaveLength(2);
    expect(result.statesEntered.filter((state) => state === 'FinishComponent')).toHaveLength(2);

    const records = Object.fromEntries(
      (await shop.deployments.list(shop.install.id)).map((record) => [record.component, record]),
    );
    expect(records.site).toMatchObject({
      status: 'deployed',
      outputs: { release: 'site' },
      sensitiveOutputs: ['token'],
    });
    expect(records.site.outputs).not.toHaveProperty('token');
    expect(records.hook).toMatchObject({
      status: 'failed',
      error: {
        step: 'apply',
        cause:
          "the deploy runner's build runner:hook-1 FAILED in BUILD: COMMAND_EXECUTION_ERROR: exit status 3 (logs: https://console.example/logs/hook-1)",
      },
    });
    expect(records.after).toMatchObject({ status: 'skipped' });
    // The build was started with names only; the input objects are gone once read or failed.
    expect(JSON.stringify(stand.started)).not.toContain(shop.install.externalId);
    expect(stand.started).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          ProjectName: expect.stringMatching(/DeployRunnerProjectName$/),
          ImageOverride: 'runner:image',
        }),
      ]),
    );
    expect([...stand.objects.keys()].filter((key) => key.startsWith('inputs/'))).toEqual([]);
  });

  it('deploys level by level, stops the dependants of a failure, keeps the rest, and explains it all', async () => {
    const shop = await shopWithBuilds();
    const result = await deploy(shop.steps, {
      installId: shop.install.id,
      deployId: 'rel_01one',
      builds: {},
    });

    const terraform = hasBinary('terraform');
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('DeployFailed');
    expect(result.cause).toBe(
      terraform
        ? 'deploy rel_01one failed: 4 deployed, 1 failed, 1 skipped'
        : 'deploy rel_01one failed: 2 deployed, 2 failed, 2 skipped',
    );

    const records = Object.fromEntries(
      (await shop.deployments.list(shop.install.id)).map((record) => [record.component, record]),
    );
    // A failure is recorded with the step, the account, the region and the cause…
    expect(records.hook).toMatchObject({
      status: 'failed',
      buildId: shop.buildIds.hook,
      error: {
        step: 'apply',
        account: '111122223333',
        region: 'eu-west-1',
        cause: expect.stringContaining('quota exceeded'),
      },
    });
    // …and stops its dependants, while independent components keep going.
    expect(records.after).toMatchObject({
      status: 'skipped',
      error: { step: 'dependencies', cause: expect.stringContaining('hook did not deploy') },
    });
    if (terraform) {
      // Terraform ran for real: its output fed the api's environment.
      expect(records.db).toMatchObject({
        status: 'deployed',
        outputs: { endpoint: `db.${shop.install.id}.internal` },
      });
      expect(records.api).toMatchObject({ status: 'deployed' });
      const api = JSON.parse(
        readFileSync(join(root, 'platform', shop.install.id, 'api', 'task-definition.json'), 'utf8'),
      );
      expect(api.containerDefinitions[0].environment).toEqual([
        { name: 'DB', value: `db.${shop.install.id}.internal` },
      ]);
    } else {
      expect(records.db).toMatchObject({
        status: 'failed',
        error: { step: 'apply', cause: expect.stringContaining('terraform is not on PATH') },
      });
      expect(records.api).toMatchObject({ status: 'skipped' });
    }
    expect(records.web).toMatchObject({
      status: 'deployed',
      releaseId: 'rel_01one',
      digest: expect.stringMatching(/^sha256:/),
    });
    expect(records.site).toMatchObject({ status: 'deployed' });

    // What was applied: the web service runs the synced digest with rendered templates.
    const platform = join(root, 'platform', shop.install.id);
    const taskDefinition = JSON.parse(readFileSync(join(platform, 'web', 'task-definition.json'), 'utf8'));
    const webImage = `${installRegistry.host}/installs/${shop.install.id}/shop/web@${records.web.digest}`;
    expect(taskDefinition.containerDefinitions[0]).toMatchObject({
      image: webImage,
      environment: [
        { name: 'DOMAIN', value: 'shop.example.com' },
        { name: 'REGION', value: 'eu-west-1' },
      ],
      portMappings: [{ containerPort: 8080 }],
    });
    expect(JSON.parse(readFileSync(join(platform, 'site', 'values.json'), 'utf8'))).toEqual({
      image: webImage,
      digest: records.web.digest,
    });
    expect(JSON.parse(readFileSync(join(platform, 'db', 'terraform.tfvars.json'), 'utf8'))).toEqual({
      name: shop.install.id,
    });

    // The artifact really is in the install's registry, tagged for the release.
    const tagged = await fetch(
      `${installRegistry.url}/v2/installs/${shop.install.id}/shop/web/manifests/rel_01one`,
      {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      },
    );
    expect(tagged.headers.get('docker-content-digest')).toBe(records.web.digest);

    const history = (await shop.controlPlane.listInstallEvents(shop.install.id, { limit: 50 })).items.map(
      (event) => event.type,
    );
    expect(history[0]).toBe('install.deploy-failed');
    expect(history).toEqual(
      expect.arrayContaining([
        'component.deploy-failed',
        'component.skipped',
        'component.deployed',
        'artifact.synced',
      ]),
    );
    // The lock is released: another deploy may start.
    expect(await shop.lock.holder(shop.install.id)).toBeUndefined();
  });

  it('refuses a deploy while another holds the install, deploying nothing', async () => {
    const shop = await shopWithBuilds();
    await shop.lock.acquire(shop.install.id, 'rel_other', 600);
    const result = await deploy(shop.steps, {
      installId: shop.install.id,
      deployId: 'rel_02two',
      builds: {},
    });
    expect(result).toMatchObject({ status: 'FAILED', error: 'DeployRefused' });
    expect(result.cause).toMatch(/is being deployed by rel_other/);
    expect(await shop.deployments.list(shop.install.id)).toEqual([]);
    expect((await shop.lock.holder(shop.install.id))?.owner).toBe('rel_other');
  });

  it('fails before deploying when a component has no successful build, and unlocks', async () => {
    const shop = await shopWithBuilds();
    await shop.controlPlane.putComponent(
      shop.app.id,
      'extra',
      { type: 'image', image: { uri: 'docker.io/acme/x:1' }, dependsOn: [] },
      't',
    );
    const result = await deploy(shop.steps, {
      installId: shop.install.id,
      deployId: 'rel_03three',
      builds: {},
    });
    expect(result).toMatchObject({ status: 'FAILED', error: 'DeployFailed' });
    expect(result.cause).toMatch(/no successful build to deploy for extra/);
    expect(await shop.lock.holder(shop.install.id)).toBeUndefined();
  });
});
