import type { SFNClient } from '@aws-sdk/client-sfn';
import { startExecutionOnce } from '../shared/executions';

/** Starts the teardown-install workflow for an install. */
export interface TeardownStarter {
  start(installId: string, teardownId: string): Promise<void>;
}

/** One execution per teardown, named after it, so a repeated start is refused by name. */
export class StepFunctionsTeardownStarter implements TeardownStarter {
  constructor(
    private readonly client: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(installId: string, teardownId: string): Promise<void> {
    await startExecutionOnce(this.client, this.stateMachineArn, teardownId, { installId, teardownId });
  }
}
