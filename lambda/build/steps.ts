/**
 * The build workflow's steps (stepfunctions/build.asl.json): prepare a build (mark it running,
 * make sure its repository exists, generate its buildspec), record its artifact, or record why it
 * failed. Plain TypeScript: the Lambda handler and the local runner call the same code.
 */
import type { Artifact, Build, Builds } from '../domain/builds';
import { buildspecFor, imageOverrideFor, toYaml } from './buildspec';

export const WORKFLOW_ACTOR = 'workflow:build';

/** Where builds push: the tenant registry's host and the prefix of its repositories. */
export interface RegistryTarget {
  readonly host: string;
  readonly prefix: string;
}

/** Creates a repository of the tenant registry if it does not exist (ECR); a no-op where pushes create them. */
export interface RepositoryEnsurer {
  ensure(repositoryName: string): Promise<void>;
}

export interface BuildStepsOptions {
  readonly builds: Builds;
  readonly registry: RegistryTarget;
  readonly repositories: RepositoryEnsurer;
  /** The build agent's image, unless a custom plugin names its own. */
  readonly defaultImage: string;
  /** Environment every build gets (FERRY_ECR_LOGIN, FERRY_TOOLS_S3_URI, FERRY_REGISTRY_INSECURE …); never secrets. */
  readonly environment: Readonly<Record<string, string>>;
}

export interface EnvironmentVariable {
  readonly Name: string;
  readonly Value: string;
  readonly Type: 'PLAINTEXT';
}

export type PreparedBuild =
  | { readonly buildId: string; readonly mode: 'record' }
  | {
      readonly buildId: string;
      readonly mode: 'build';
      readonly buildspec: string;
      readonly image: string;
      readonly environment: EnvironmentVariable[];
    };

/** What the build agent reported: CodeBuild's Build, as startBuild.sync returns it (selected). */
export interface BuildRun {
  readonly exported?: readonly { Name?: string; Value?: string }[];
  readonly logsUrl?: string;
}

export interface StepError {
  readonly Error?: string;
  readonly Cause?: string;
}

export function repositoryFor(prefix: string, build: Pick<Build, 'appName' | 'component'>): string {
  return `${prefix}/${build.appName}/${build.component}`;
}

export class BuildSteps {
  constructor(private readonly options: BuildStepsOptions) {}

  async prepare(buildId: string): Promise<PreparedBuild> {
    const build = await this.options.builds.markRunning(buildId, WORKFLOW_ACTOR);
    if (build.spec.type === 'helm' && build.spec.chart.kind === 'prebuilt')
      return { buildId, mode: 'record' };
    const repository = repositoryFor(this.options.registry.prefix, build);
    await this.options.repositories.ensure(repository);
    const plan = {
      buildId,
      componentName: build.component,
      spec: build.spec,
      ...(build.ref !== undefined && { ref: build.ref }),
      target: { registry: this.options.registry.host, repository, tag: buildId },
    };
    return {
      buildId,
      mode: 'build',
      buildspec: toYaml(buildspecFor(plan)),
      image: imageOverrideFor(plan) ?? this.options.defaultImage,
      environment: Object.entries(this.options.environment).map(([Name, Value]) => ({
        Name,
        Value,
        Type: 'PLAINTEXT',
      })),
    };
  }

  async succeed(buildId: string, run: BuildRun | undefined): Promise<Build> {
    const build = await this.options.builds.get(buildId);
    if (build.spec.type === 'helm' && build.spec.chart.kind === 'prebuilt') {
      const { repo, name, version } = build.spec.chart;
      return this.options.builds.recordSuccess(
        buildId,
        { artifact: { uri: repo, chart: { repo, name, version } }, sourceRevision: `${name}@${version}` },
        WORKFLOW_ACTOR,
      );
    }
    const variables = Object.fromEntries(
      (run?.exported ?? []).map((variable) => [variable.Name ?? '', variable.Value ?? '']),
    );
    const digest = variables.ARTIFACT_DIGEST;
    if (!/^sha256:[a-f0-9]{64}$/.test(digest ?? '')) {
      throw new Error(
        `build ${buildId} finished without a valid ARTIFACT_DIGEST (got ${JSON.stringify(digest ?? null)})`,
      );
    }
    const repository = repositoryFor(this.options.registry.prefix, build);
    const artifact: Artifact = {
      uri: `${this.options.registry.host}/${repository}@${digest}`,
      registry: this.options.registry.host,
      repository,
      tag: buildId,
      digest,
      size: Number(variables.ARTIFACT_SIZE),
      mediaType: variables.ARTIFACT_MEDIA_TYPE,
    };
    return this.options.builds.recordSuccess(
      buildId,
      { artifact, sourceRevision: variables.SOURCE_REVISION || undefined, logsUrl: run?.logsUrl },
      WORKFLOW_ACTOR,
    );
  }

  async fail(buildId: string, step: string, error: StepError): Promise<Build> {
    const explained = explainFailure(step, error);
    return this.options.builds.recordFailure(
      buildId,
      { step: explained.step, message: explained.message },
      WORKFLOW_ACTOR,
      explained.logsUrl,
    );
  }
}

type Json = Record<string, unknown>;

/** Reads a key case-insensitively: Step Functions' CodeBuild output is PascalCase, the SDK's camelCase. */
function field(object: unknown, name: string): unknown {
  if (typeof object !== 'object' || object === null) return undefined;
  const key = Object.keys(object).find((candidate) => candidate.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : (object as Json)[key];
}

/**
 * Turns a caught error into which step failed and why: a CodeBuild build's failed phase and its
 * message, a Lambda error's message, or the error as given.
 */
export function explainFailure(
  step: string,
  error: StepError,
): { step: string; message: string; logsUrl?: string } {
  const name = error.Error ?? 'Error';
  let cause: unknown = error.Cause;
  try {
    cause = typeof error.Cause === 'string' ? JSON.parse(error.Cause) : error.Cause;
  } catch {
    // a plain-text cause
  }
  const build = field(cause, 'Build') ?? cause;
  const phases = field(build, 'Phases');
  if (Array.isArray(phases)) {
    const failed = phases.find(
      (phase) =>
        String(field(phase, 'PhaseStatus')) !== 'SUCCEEDED' && field(phase, 'PhaseStatus') !== undefined,
    );
    const contexts = field(failed, 'Contexts');
    const message = Array.isArray(contexts)
      ? contexts
          .map((context) => String(field(context, 'Message') ?? ''))
          .filter(Boolean)
          .join('; ')
      : '';
    const logsUrl = field(field(build, 'Logs'), 'DeepLink');
    return {
      step: failed ? String(field(failed, 'PhaseType')) : step,
      message: message || `the build ended ${String(field(build, 'BuildStatus') ?? 'FAILED')}`,
      ...(typeof logsUrl === 'string' && { logsUrl }),
    };
  }
  const lambdaMessage = field(cause, 'errorMessage');
  if (typeof lambdaMessage === 'string')
    return { step, message: `${String(field(cause, 'errorType') ?? name)}: ${lambdaMessage}` };
  return { step, message: typeof cause === 'string' && cause ? `${name}: ${cause}` : name };
}
