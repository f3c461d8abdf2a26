import { SFNClient } from '@aws-sdk/client-sfn';
import { Releases } from '../domain/releases';
import { StateStore } from '../domain/state-store';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { StepFunctionsDeployExecutions, StepFunctionsTaskNotifier } from './aws';
import { type DeploySummary, ReleaseSteps } from './steps';

const store = new StateStore({ client: documentClient(), table: requireEnv('STATE_TABLE') });
// A wave may start thousands of executions at once: let the SDK pace itself against throttling.
const sfn = new SFNClient({ retryMode: 'adaptive', maxAttempts: 10 });
const steps = new ReleaseSteps({
  releases: new Releases(store),
  store,
  executions: new StepFunctionsDeployExecutions(sfn, requireEnv('DEPLOY_INSTALL_STATE_MACHINE_ARN')),
  notifier: new StepFunctionsTaskNotifier(sfn),
});

export type ReleaseStepEvent =
  | { action: 'decide'; releaseId: string; wavesInExecution?: number }
  | { action: 'run-wave'; releaseId: string; wave: number; taskToken: string }
  | { action: 'reconcile-wave'; releaseId: string; wave: number }
  | { action: 'finish'; releaseId: string; decision: { action: 'stop' | 'done' | 'cancel'; reason: string } }
  | { action: 'fail'; releaseId: string; error?: { Error?: string; Cause?: string } }
  | {
      action: 'report';
      installId: string;
      release: { releaseId: string; wave: number };
      summary: DeploySummary;
    };

/** The release workflow's Lambda task, and the deploy-install workflow's report to its release. */
export async function handler(event: ReleaseStepEvent): Promise<unknown> {
  const releaseId = event.action === 'report' ? event.release.releaseId : event.releaseId;
  logger.appendKeys({ releaseId, ...(event.action === 'report' && { installId: event.installId }) });
  logger.info('release step', { action: event.action });
  switch (event.action) {
    case 'decide':
      return steps.decide(event);
    case 'run-wave':
      return steps.runWave(event);
    case 'reconcile-wave':
      return steps.reconcileWave(event);
    case 'finish':
      return steps.finish(event);
    case 'fail':
      return steps.fail(event);
    case 'report':
      return steps.report(event);
    default:
      throw new Error(`release step: unknown action in ${JSON.stringify(event)}`);
  }
}
