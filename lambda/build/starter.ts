import type { SFNClient } from '@aws-sdk/client-sfn';
import { startExecutionOnce } from '../shared/executions';

/** Starts the build workflow for a recorded build. Starting the same build twice starts it once. */
export interface BuildStarter {
  start(buildId: string): Promise<void>;
}

/** AWS: one Step Functions execution per build, named after the build so a repeat is refused by name. */
export class StepFunctionsBuildStarter implements BuildStarter {
  constructor(
    private readonly client: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(buildId: string): Promise<void> {
    await startExecutionOnce(this.client, this.stateMachineArn, buildId, { buildId });
  }
}
