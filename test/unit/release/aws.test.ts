import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import {
  executionArnOf,
  StepFunctionsDeployExecutions,
  StepFunctionsReleaseStarter,
  StepFunctionsTaskNotifier,
} from '../../../lambda/release/aws';

const sfn = mockClient(SFNClient);
afterEach(() => sfn.reset());

const deployArn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:ferry-acme-deploy-install';
const input = {
  installId: 'inst_1',
  deployId: 'rel_1',
  builds: { web: 'build_1' },
  release: { releaseId: 'rel_1', wave: 2 },
};

describe("the release workflow's Step Functions edges", () => {
  it('starts a release once, named after it, with nothing but its id', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({})
      .rejectsOnce(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const starter = new StepFunctionsReleaseStarter(new SFNClient({}), 'arn:release');
    await starter.start('rel_1');
    await starter.start('rel_1');
    expect(sfn.commandCalls(StartExecutionCommand).map((call) => call.args[0].input)).toEqual([
      { stateMachineArn: 'arn:release', name: 'rel_1', input: '{"releaseId":"rel_1","wavesInExecution":0}' },
      { stateMachineArn: 'arn:release', name: 'rel_1', input: '{"releaseId":"rel_1","wavesInExecution":0}' },
    ]);
  });

  it('starts each install deploy by name, tolerates a repeat, and finds it again by name', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    sfn.on(DescribeExecutionCommand).resolves({ status: 'TIMED_OUT', error: 'States.Timeout' });
    const executions = new StepFunctionsDeployExecutions(new SFNClient({}), deployArn);
    await executions.start('rel_1-inst_1', input);
    expect(sfn.commandCalls(StartExecutionCommand)[0].args[0].input).toEqual({
      stateMachineArn: deployArn,
      name: 'rel_1-inst_1',
      input: JSON.stringify(input),
    });
    expect(await executions.describe('rel_1-inst_1')).toEqual({
      status: 'TIMED_OUT',
      cause: 'States.Timeout',
    });
    expect(sfn.commandCalls(DescribeExecutionCommand)[0].args[0].input).toEqual({
      executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:ferry-acme-deploy-install:rel_1-inst_1',
    });
  });

  it('refuses what is not a state machine ARN', () => {
    expect(() => executionArnOf('arn:aws:lambda:eu-west-1:1:function:x', 'n')).toThrow(
      /not a state machine ARN/,
    );
  });

  it('wakes a waiting wave, and lets a wave nobody waits for any more go', async () => {
    sfn
      .on(SendTaskSuccessCommand)
      .resolvesOnce({})
      .rejectsOnce(new TaskTimedOut({ message: 'timed out', $metadata: {} }));
    const notifier = new StepFunctionsTaskNotifier(new SFNClient({}));
    await notifier.succeed('token-1', { wave: 2 });
    await notifier.succeed('token-2', { wave: 3 });
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((call) => call.args[0].input)).toEqual([
      { taskToken: 'token-1', output: '{"wave":2}' },
      { taskToken: 'token-2', output: '{"wave":3}' },
    ]);
    sfn.on(SendTaskSuccessCommand).rejects(new Error('AccessDenied'));
    await expect(notifier.succeed('token-3', {})).rejects.toThrow('AccessDenied');
  });
});
