import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

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
    try {
      await this.client.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name: teardownId,
          input: JSON.stringify({ installId, teardownId }),
        }),
      );
    } catch (error) {
      if (error instanceof ExecutionAlreadyExists) return;
      throw error;
    }
  }
}
