/**
 * Local builds: the build workflow (stepfunctions/build.asl.json) run by aws-local-stepfunctions,
 * its Lambda steps mapped to the same BuildSteps the Lambda handler runs and its CodeBuild step to
 * the local build agent running the same generated buildspec.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Buildspec } from '../lambda/build/buildspec';
import type { BuildStarter } from '../lambda/build/starter';
import type { BuildRun, BuildSteps, EnvironmentVariable, StepError } from '../lambda/build/steps';
import { runBuildspec } from './build-agent';
import { runWorkflow } from './stepfunctions';

export interface LocalBuildRunnerOptions {
  readonly steps: BuildSteps;
  /** Each build works in `<workRoot>/<buildId>/`. */
  readonly workRoot: string;
  /** How the buildspec runs the packaging tool: `node <bundle>`. */
  readonly packageCommand: string;
  /** Extra environment for every build (FERRY_REGISTRY_INSECURE=1 …). */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default 30 minutes */
  readonly timeoutMs?: number;
  /** Told of every finished workflow run. */
  readonly onFinished?: (buildId: string, status: 'SUCCEEDED' | 'FAILED', cause?: string) => void;
}

/** StartBuild's parameters, as the RunBuild state passes them. */
interface StartBuildInput {
  readonly BuildspecOverride: string;
  readonly ImageOverride?: string;
  readonly EnvironmentVariablesOverride?: readonly EnvironmentVariable[];
}

/** A failed CodeBuild task as Step Functions reports it: States.TaskFailed with the Build as the cause. */
class TaskFailed extends Error {
  override readonly name = 'States.TaskFailed';
}

export class LocalBuildRunner implements BuildStarter {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly options: LocalBuildRunnerOptions) {}

  async start(buildId: string): Promise<void> {
    if (this.running.has(buildId)) return;
    const run = this.run(buildId).finally(() => this.running.delete(buildId));
    this.running.set(buildId, run);
  }

  /** Resolves when every build started so far has finished. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  private async run(buildId: string): Promise<void> {
    const { steps } = this.options;
    const result = await runWorkflow(
      'build',
      { buildId },
      {
        executionName: buildId,
        tasks: {
          PrepareBuild: (input: { buildId: string }) => steps.prepare(input.buildId),
          RunBuild: (input: StartBuildInput) => this.runBuild(buildId, input),
          RecordSuccess: (input: { buildId: string; run?: BuildRun }) =>
            steps.succeed(input.buildId, input.run),
          RecordFailure: (input: { buildId: string; step: string; error: StepError }) =>
            steps.fail(input.buildId, input.step, input.error),
        },
      },
    );
    this.options.onFinished?.(buildId, result.status, result.cause);
  }

  /** Stands in for codebuild:startBuild.sync: the same buildspec, run by the local build agent. */
  private async runBuild(buildId: string, input: StartBuildInput): Promise<unknown> {
    const workDir = join(this.options.workRoot, buildId, 'work');
    mkdirSync(workDir, { recursive: true });
    const buildspec = parse(input.BuildspecOverride) as Buildspec;
    const environment = Object.fromEntries(
      (input.EnvironmentVariablesOverride ?? []).map((v) => [v.Name, v.Value]),
    );
    const result = await runBuildspec(buildspec, {
      workDir,
      env: {
        ...environment,
        ...this.options.environment,
        FERRY_PACKAGE: this.options.packageCommand,
        CODEBUILD_BUILD_ID: buildId,
      },
      timeoutMs: this.options.timeoutMs ?? 30 * 60_000,
    });
    const logs = { DeepLink: `file://${result.logFile}` };
    const phases = result.phases.map((phase) => ({
      PhaseType: phase.name.toUpperCase(),
      PhaseStatus:
        phase.status === 'SUCCEEDED' ? 'SUCCEEDED' : phase.status === 'SKIPPED' ? 'SKIPPED' : 'FAILED',
      DurationInSeconds: Math.round(phase.durationMs / 1000),
      ...(result.failure &&
        result.failure.phase === phase.name && { Contexts: [{ Message: result.failure.message }] }),
    }));
    if (result.status !== 'SUCCEEDED') {
      throw new TaskFailed(JSON.stringify({ Build: { BuildStatus: 'FAILED', Phases: phases, Logs: logs } }));
    }
    return {
      Build: {
        BuildStatus: 'SUCCEEDED',
        Phases: phases,
        Logs: logs,
        ExportedEnvironmentVariables: Object.entries(result.exportedVariables).map(([Name, Value]) => ({
          Name,
          Value,
        })),
      },
    };
  }
}
