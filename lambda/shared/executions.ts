import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

/**
 * Starts a Step Functions execution named `name`. The name makes a repeated start harmless: Step
 * Functions refuses a second execution of that name (and returns nothing new for the same input),
 * which is taken as "already started".
 */
export async function startExecutionOnce(
  client: SFNClient,
  stateMachineArn: string,
  name: string,
  input: unknown,
): Promise<void> {
  try {
    await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return;
    throw error;
  }
}
