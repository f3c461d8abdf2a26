import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

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
    try {
      await this.client.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name: buildId,
          input: JSON.stringify({ buildId }),
        }),
      );
    } catch (error) {
      if (error instanceof ExecutionAlreadyExists) return;
      throw error;
    }
  }
}
