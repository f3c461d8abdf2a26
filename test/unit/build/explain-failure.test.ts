import { explainFailure } from '../../../lambda/build/steps';

describe('explaining a failed build step', () => {
  it('names the failed CodeBuild phase, its message and the logs link', () => {
    const cause = JSON.stringify({
      Build: {
        BuildStatus: 'FAILED',
        Phases: [
          { PhaseType: 'INSTALL', PhaseStatus: 'SUCCEEDED' },
          {
            PhaseType: 'PRE_BUILD',
            PhaseStatus: 'FAILED',
            Contexts: [{ StatusCode: 'COMMAND_EXECUTION_ERROR', Message: "path 'web' does not exist" }],
          },
        ],
        Logs: { DeepLink: 'https://console.aws.amazon.com/cloudwatch/home#logsV2:log-groups' },
      },
    });
    expect(explainFailure('build', { Error: 'States.TaskFailed', Cause: cause })).toEqual({
      step: 'PRE_BUILD',
      message: "path 'web' does not exist",
      logsUrl: 'https://console.aws.amazon.com/cloudwatch/home#logsV2:log-groups',
    });
  });

  it('reads camelCase phases as the SDK returns them', () => {
    const cause = JSON.stringify({
      phases: [{ phaseType: 'BUILD', phaseStatus: 'FAILED', contexts: [{ message: 'exit 1' }] }],
    });
    expect(explainFailure('build', { Error: 'States.TaskFailed', Cause: cause })).toMatchObject({
      step: 'BUILD',
      message: 'exit 1',
    });
  });

  it("explains a Lambda step's error by its type and message", () => {
    const cause = JSON.stringify({
      errorType: 'RepositoryPolicyNotFound',
      errorMessage: 'denied',
      trace: [],
    });
    expect(explainFailure('prepare', { Error: 'RepositoryPolicyNotFound', Cause: cause })).toEqual({
      step: 'prepare',
      message: 'RepositoryPolicyNotFound: denied',
    });
  });

  it('keeps a plain-text cause and falls back to the error name', () => {
    expect(explainFailure('record', { Error: 'Error', Cause: 'no digest' })).toEqual({
      step: 'record',
      message: 'Error: no digest',
    });
    expect(explainFailure('build', { Error: 'States.Timeout' })).toEqual({
      step: 'build',
      message: 'States.Timeout',
    });
  });
});
