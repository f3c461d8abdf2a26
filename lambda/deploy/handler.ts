import { ECRClient } from '@aws-sdk/client-ecr';
import { STSClient } from '@aws-sdk/client-sts';
import { Builds } from '../domain/builds';
import { ControlPlane } from '../domain/control-plane';
import { Deployments } from '../domain/deployments';
import { InstallLock } from '../domain/install-lock';
import { StateStore } from '../domain/state-store';
import type { RegistryClient } from '../oci/client';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { AwsInstallAccess, ecrRegistry } from '../sync/access';
import { SyncSteps } from '../sync/steps';
import { EcsPlatform } from './ecs-platform';
import type { ApplyRequest, Platform } from './platform';
import { type ComponentOutcome, type DeployInput, DeploySteps, type PlannedLevelItem } from './steps';

const client = documentClient();
const table = requireEnv('STATE_TABLE');
const tenant = requireEnv('FERRY_TENANT');
const store = new StateStore({ client, table });
const controlPlane = new ControlPlane({ client, table });
const builds = new Builds(store);
const access = new AwsInstallAccess({ sts: new STSClient({}), tenant });
const ecs = new EcsPlatform({ access, tenant });
let tenantRegistry: RegistryClient | undefined;

/** In AWS today: containers on ECS; the Helm/Terraform deploy runner and plugins are not built yet. */
const platform: Platform = {
  apply(request: ApplyRequest) {
    if (request.spec.type === 'image' || request.spec.type === 'dockerfile') return ecs.apply(request);
    throw new Error(
      `deploying ${request.spec.type} components in AWS is not supported yet (only image and dockerfile)`,
    );
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
});

export type DeployStepEvent =
  | ({ action: 'lock' } & DeployInput)
  | ({ action: 'plan' } & DeployInput)
  | ({ action: 'deploy-component' } & DeployInput & PlannedLevelItem)
  | ({
      action: 'unlock';
      outcomes?: ComponentOutcome[][];
      error?: { Error?: string; Cause?: string };
    } & DeployInput);

/** The deploy-install workflow's Lambda task. */
export async function handler(event: DeployStepEvent): Promise<unknown> {
  logger.appendKeys({ installId: event.installId, deployId: event.deployId });
  logger.info('deploy step', { action: event.action });
  switch (event.action) {
    case 'lock':
      return steps.lock(event);
    case 'plan':
      return steps.plan(event);
    case 'deploy-component':
      return steps.deployComponent(event);
    case 'unlock':
      return steps.unlock(event);
    default:
      throw new Error(`deploy step: unknown action in ${JSON.stringify(event)}`);
  }
}
