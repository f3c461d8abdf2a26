import { ECRClient } from '@aws-sdk/client-ecr';
import { Builds } from '../domain/builds';
import { StateStore } from '../domain/state-store';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { EcrRepositories } from './ecr-repositories';
import { type BuildRun, BuildSteps, type StepError } from './steps';

const builds = new Builds(new StateStore({ client: documentClient(), table: requireEnv('STATE_TABLE') }));
const steps = new BuildSteps({
  builds,
  registry: { host: requireEnv('REGISTRY_HOST'), prefix: requireEnv('REGISTRY_PREFIX') },
  repositories: new EcrRepositories(new ECRClient({}), requireEnv('TENANT_KEY_ARN')),
  defaultImage: requireEnv('BUILD_IMAGE'),
  environment: { FERRY_ECR_LOGIN: '1', FERRY_TOOLS_S3_URI: requireEnv('TOOLS_S3_URI') },
});

export type BuildStepEvent =
  | { action: 'prepare'; buildId: string }
  | { action: 'succeed'; buildId: string; run?: BuildRun }
  | { action: 'fail'; buildId: string; step: string; error: StepError };

/** The build workflow's Lambda task: one entry, three steps. */
export async function handler(event: BuildStepEvent): Promise<unknown> {
  logger.appendKeys({ buildId: event.buildId });
  logger.info('build step', { action: event.action });
  switch (event.action) {
    case 'prepare':
      return steps.prepare(event.buildId);
    case 'succeed':
      return steps.succeed(event.buildId, event.run);
    case 'fail':
      return steps.fail(event.buildId, event.step, event.error);
    default:
      throw new Error(`build step: unknown action in ${JSON.stringify(event)}`);
  }
}
