/**
 * The release workflow's AWS edges: deploy-install executions started and described through Step
 * Functions, the waiting release woken with SendTaskSuccess, and a release's own execution started.
 */
import {
  DescribeExecutionCommand,
  InvalidToken,
  SendTaskSuccessCommand,
  type SFNClient,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { startExecutionOnce } from '../shared/executions';
import { logger } from '../shared/logger';
import type { DeployExecutions, DeployInstallInput, TaskNotifier } from './steps';

/** Starts the release workflow for a recorded release. */
export interface ReleaseStarter {
  start(releaseId: string): Promise<void>;
}

/** One release execution per release, named after it, so a repeat start is refused by name. */
export class StepFunctionsReleaseStarter implements ReleaseStarter {
  constructor(
    private readonly client: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(releaseId: string): Promise<void> {
    await startExecutionOnce(this.client, this.stateMachineArn, releaseId, {
      releaseId,
      wavesInExecution: 0,
    });
  }
}

/** The execution ARN of `name` in the state machine `stateMachineArn`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  const parts = stateMachineArn.split(':');
  if (parts.length !== 7 || parts[5] !== 'stateMachine') {
    throw new Error(`${stateMachineArn} is not a state machine ARN`);
  }
  return [...parts.slice(0, 5), 'execution', parts[6], name].join(':');
}

export class StepFunctionsDeployExecutions implements DeployExecutions {
  constructor(
    private readonly client: SFNClient,
    private readonly deployInstallArn: string,
  ) {}

  async start(name: string, input: DeployInstallInput): Promise<void> {
    // Started before with this very input (a retried wave): that execution stands.
    await startExecutionOnce(this.client, this.deployInstallArn, name, input);
  }

  async describe(name: string): Promise<{ status: string; cause?: string }> {
    const execution = await this.client.send(
      new DescribeExecutionCommand({ executionArn: executionArnOf(this.deployInstallArn, name) }),
    );
    return {
      status: execution.status ?? 'UNKNOWN',
      ...((execution.cause ?? execution.error) && { cause: execution.cause ?? execution.error }),
    };
  }
}

export class StepFunctionsTaskNotifier implements TaskNotifier {
  constructor(private readonly client: SFNClient) {}

  async succeed(token: string, output: unknown): Promise<void> {
    try {
      await this.client.send(
        new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) }),
      );
    } catch (error) {
      // The wave already timed out and is being reconciled, or the release was stopped: nobody waits.
      if (
        error instanceof TaskTimedOut ||
        error instanceof TaskDoesNotExist ||
        error instanceof InvalidToken
      ) {
        logger.warn('nobody waits for this wave any more', { error: (error as Error).name });
        return;
      }
      throw error;
    }
  }
}
