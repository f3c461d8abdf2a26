import { ECRClient } from '@aws-sdk/client-ecr';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { Builds } from '../domain/builds';
import { ControlPlane } from '../domain/control-plane';
import { Deployments } from '../domain/deployments';
import { InstallLock } from '../domain/install-lock';
import { KmsSealer } from '../domain/secrets';
import { StateStore } from '../domain/state-store';
import type { RegistryClient } from '../oci/client';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { AwsInstallAccess, ecrRegistry } from '../sync/access';
import { SyncSteps } from '../sync/steps';
import { EcsPlatform } from './ecs-platform';
import type { ApplyRequest, DestroyRequest, Platform } from './platform';
import { RunnerPlatform } from './runner-platform';
import {
  type ComponentOutcome,
  type DeployInput,
  DeploySteps,
  type PlannedLevelItem,
  type RunnerEnd,
} from './steps';
import { type RemovingComponent, type TeardownInput, type TeardownOutcome, TeardownSteps } from './teardown';

const client = documentClient();
const table = requireEnv('STATE_TABLE');
const tenant = requireEnv('FERRY_TENANT');
const store = new StateStore({ client, table });
// Deploys open sensitive inputs and seal sensitive outputs with the tenant key.
const sealer = new KmsSealer(new KMSClient({}), requireEnv('TENANT_KEY_ARN'));
const controlPlane = new ControlPlane({ client, table, sealer });
const builds = new Builds(store);
const access = new AwsInstallAccess({ sts: new STSClient({}), tenant });
const ecs = new EcsPlatform({ access, tenant });
let tenantRegistry: RegistryClient | undefined;

/** Helm charts, Terraform modules and plugins: builds of the deploy runner, which the workflow starts. */
const runnerPlatform = new RunnerPlatform({
  s3: new S3Client({}),
  bucket: requireEnv('DEPLOY_RUNNER_BUCKET'),
  tenant,
  defaultImage: requireEnv('DEPLOY_RUNNER_IMAGE'),
});
const runner = {
  handles: (spec: ApplyRequest['spec']) => spec.type !== 'image' && spec.type !== 'dockerfile',
  prepare: (request: ApplyRequest, action?: 'apply' | 'destroy') => runnerPlatform.prepare(request, action),
  finish: (job: Parameters<RunnerPlatform['finish']>[0]) => runnerPlatform.finish(job),
  discard: (job: Parameters<RunnerPlatform['discard']>[0]) => runnerPlatform.discard(job),
};

/** Containers on ECS; everything else goes to the deploy runner (see `runner`). */
const platform: Required<Platform> = {
  apply(request: ApplyRequest) {
    if (request.spec.type === 'image' || request.spec.type === 'dockerfile') return ecs.apply(request);
    throw new Error(`${request.spec.type} components are applied by the deploy runner, not here`);
  },
  async destroy(request: DestroyRequest) {
    if (request.spec.type === 'image' || request.spec.type === 'dockerfile') return ecs.destroy(request);
    throw new Error(`${request.spec.type} components are removed by the deploy runner, not here`);
  },
};

const steps = new DeploySteps({
  controlPlane,
  builds,
  deployments: new Deployments(store),
  lock: new InstallLock(store),
  store,
  sync: new SyncSteps({
    controlPlane,
    builds,
    store,
    tenantRegistry: async () => {
      tenantRegistry ??= await ecrRegistry(new ECRClient({}), requireEnv('REGISTRY_HOST'));
      return tenantRegistry;
    },
    access,
    destinationPrefix: () => requireEnv('INSTALL_REPOSITORY_PREFIX'),
  }),
  platform,
  runner,
  sealer,
});

const teardown = new TeardownSteps({
  controlPlane,
  deployments: new Deployments(store),
  lock: new InstallLock(store),
  store,
  platform,
  runner,
  sealer,
});

export type TeardownStepEvent =
  | ({ action: 'teardown-lock' } & TeardownInput)
  | ({ action: 'teardown-plan' } & TeardownInput)
  | ({ action: 'destroy-component'; component: string } & TeardownInput)
  | { action: 'finish-destroy'; installId?: undefined; deployId?: undefined; job: RemovingComponent }
  | ({
      action: 'teardown-finish';
      outcomes?: TeardownOutcome[][];
      error?: { Error?: string; Cause?: string };
    } & TeardownInput);

export type DeployStepEvent =
  | TeardownStepEvent
  | ({ action: 'lock' } & DeployInput)
  | ({ action: 'plan' } & DeployInput)
  | ({ action: 'deploy-component' } & DeployInput & PlannedLevelItem)
  | { action: 'finish-component'; installId?: undefined; deployId?: undefined; job: RunnerEnd }
  | ({
      action: 'unlock';
      outcomes?: ComponentOutcome[][];
      error?: { Error?: string; Cause?: string };
    } & DeployInput);

/** The deploy-install and teardown-install workflows' Lambda task. */
export async function handler(event: DeployStepEvent): Promise<unknown> {
  logger.appendKeys({
    installId: event.installId,
    ...('teardownId' in event ? { teardownId: event.teardownId } : { deployId: event.deployId }),
  });
  logger.info('deploy step', { action: event.action });
  switch (event.action) {
    case 'teardown-lock':
      return teardown.lock(event);
    case 'teardown-plan':
      return teardown.plan(event);
    case 'destroy-component':
      return teardown.destroyComponent(event);
    case 'finish-destroy':
      return teardown.finishDestroy(event);
    case 'teardown-finish':
      return teardown.finish(event);
    case 'lock':
      return steps.lock(event);
    case 'plan':
      return steps.plan(event);
    case 'deploy-component':
      return steps.deployComponent(event);
    case 'finish-component':
      return steps.finishComponent(event);
    case 'unlock':
      return steps.unlock(event);
    default:
      throw new Error(`deploy step: unknown action in ${JSON.stringify(event)}`);
  }
}
