/**
 * The deploy-install workflow's steps (stepfunctions/deploy-install.asl.json): lock the install,
 * order its components by their graph, deploy each (sync its artifact into the install, render its
 * templates from install inputs and upstream outputs, apply it, record what was deployed), and
 * unlock. A failed component stops its dependants; independent components keep going.
 */
import type { Build, Builds } from '../domain/builds';
import type { ControlPlane, Install } from '../domain/control-plane';
import type { Deployments } from '../domain/deployments';
import type { InstallLock } from '../domain/install-lock';
import type { SecretSealer } from '../domain/secrets';
import type { StateStore } from '../domain/state-store';
import type { RenderContext } from '../domain/templates';
import type { SyncSteps } from '../sync/steps';
import { planDeploy, renderContextFor, renderForInstall } from './plan';
import type { ApplyRequest, ApplyResult, Platform } from './platform';
import type { RunnerJob } from './runner-platform';

export const DEPLOY_ACTOR = 'workflow:deploy-install';
/** A deploy holds its install at most this long; a crashed one is taken over after it. */
export const LOCK_SECONDS = 3 * 60 * 60;

export interface DeployInput {
  readonly installId: string;
  /** Names this deploy: the lock's owner, the release the install's records point at. */
  readonly deployId: string;
  /** The build to deploy per component; a component not named deploys its latest successful build. */
  readonly builds?: Readonly<Record<string, string>>;
}

export interface PlannedLevelItem {
  readonly component: string;
  readonly buildId: string;
}

export interface ComponentOutcome {
  readonly component: string;
  readonly status: 'deployed' | 'failed' | 'skipped';
  readonly cause?: string;
}

/** Components the deploy runner applies: the workflow runs the job, then finishComponent. */
export interface DeployRunner {
  handles(spec: ApplyRequest['spec']): boolean;
  prepare(request: ApplyRequest, action?: 'apply' | 'destroy'): Promise<RunnerJob>;
  finish(job: RunnerJob): Promise<ApplyResult>;
  discard(job: RunnerJob): Promise<void>;
}

/** A component handed to the deploy runner: what finishComponent needs to record it. */
export interface RunningComponent extends DeployInput, PlannedLevelItem {
  readonly status: 'running';
  readonly runner: RunnerJob;
  readonly artifact: { uri: string; digest?: string };
}

/** The runner build's end, as the workflow hands it over: its result, or the error it caught. */
export interface RunnerEnd extends RunningComponent {
  readonly runnerBuild?: { id: string; status: string };
  readonly runnerError?: { Error?: string; Cause?: string };
}

export interface DeployStepsOptions {
  readonly controlPlane: ControlPlane;
  readonly builds: Builds;
  readonly deployments: Deployments;
  readonly lock: InstallLock;
  readonly store: StateStore;
  readonly sync: SyncSteps;
  readonly platform: Platform;
  /** Applies the components it handles on the deploy runner (AWS); without it the platform applies all. */
  readonly runner?: DeployRunner;
  /**
   * Seals sensitive outputs so dependants can render with them, and opens them again (the tenant
   * key). Without it sensitive outputs are dropped after the apply. @default none
   */
  readonly sealer?: SecretSealer;
}

class StepFailure extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(message);
  }
}

export class DeploySteps {
  constructor(private readonly options: DeployStepsOptions) {}

  async lock(input: DeployInput): Promise<{ lockedUntil: number }> {
    const held = await this.options.lock.acquire(input.installId, input.deployId, LOCK_SECONDS);
    return { lockedUntil: held.expiresAt };
  }

  /** The components in levels, each with the build it deploys; refuses components without a build. */
  async plan(input: DeployInput): Promise<{ levels: PlannedLevelItem[][] }> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const components = await this.options.controlPlane.allComponents(install.appId);
    const chosen = new Map<string, string>();
    const missing: string[] = [];
    for (const component of components) {
      const buildId =
        input.builds?.[component.name] ??
        (await this.options.builds.latestSucceeded(install.appId, component.name));
      if (buildId) chosen.set(component.name, buildId);
      else missing.push(component.name);
    }
    if (missing.length > 0) {
      throw new StepFailure(
        'plan',
        `no successful build to deploy for ${missing.join(', ')}; build them first`,
      );
    }
    const { levels } = planDeploy(components);
    return {
      levels: levels.map((level) =>
        level.map((name) => ({ component: name, buildId: chosen.get(name) ?? '' })),
      ),
    };
  }

  /**
   * Deploys one component; never throws, so its level finishes: the outcome says what happened. A
   * component the deploy runner applies comes back `running`, with the job the workflow starts.
   */
  async deployComponent(input: DeployInput & PlannedLevelItem): Promise<ComponentOutcome | RunningComponent> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const component = await this.options.controlPlane.getComponent(install.appId, input.component);
    const recorded = await this.options.deployments.listWithSealed(install.id);
    const deployed = new Map(
      recorded.records
        .filter((record) => record.releaseId === input.deployId)
        .map((record) => [record.component, record]),
    );
    const blocked = component.dependencies.filter((name) => deployed.get(name)?.status !== 'deployed');
    if (blocked.length > 0) {
      const cause = `not deployed because ${blocked.join(', ')} did not deploy in ${input.deployId}`;
      await this.options.deployments.record(
        install.id,
        install.appId,
        component.name,
        {
          status: 'skipped',
          buildId: input.buildId,
          releaseId: input.deployId,
          error: this.errorOf(install, 'dependencies', cause),
        },
        DEPLOY_ACTOR,
      );
      return { component: component.name, status: 'skipped', cause };
    }
    let step = 'sync';
    try {
      const build = await this.options.builds.get(input.buildId);
      const artifact = await this.syncArtifact(install, build, input.deployId);
      step = 'render';
      const spec = renderForInstall(
        component.spec,
        await openRenderContext(this.options, install, deployed, recorded.sealedOutputs),
      );
      step = 'apply';
      const request: ApplyRequest = {
        install,
        deployId: input.deployId,
        component: component.name,
        spec,
        artifact,
      };
      const { runner } = this.options;
      if (runner?.handles(spec)) {
        const running: RunningComponent = {
          installId: input.installId,
          deployId: input.deployId,
          component: component.name,
          buildId: build.id,
          status: 'running',
          runner: await runner.prepare(request),
          artifact: { uri: artifact.uri, ...(artifact.digest && { digest: artifact.digest }) },
        };
        return running;
      }
      const result = await this.options.platform.apply(request);
      return await this.recordDeployed(install, component.name, build.id, input.deployId, artifact, result);
    } catch (error) {
      return this.recordFailed(install, component.name, input.buildId, input.deployId, step, error);
    }
  }

  /** After the deploy runner's build: record the component deployed with its outputs, or failed and why. */
  async finishComponent(input: { job: RunnerEnd }): Promise<ComponentOutcome> {
    const { job } = input;
    const runner = this.options.runner;
    const install = await this.options.controlPlane.getInstall(job.installId);
    if (!runner) throw new Error('finish-component: this deploy has no deploy runner');
    if (job.runnerError || job.runnerBuild?.status !== 'SUCCEEDED') {
      await runner.discard(job.runner);
      const cause = job.runnerError
        ? runnerFailure(job.runnerError)
        : `the deploy runner's build ${job.runnerBuild?.id} ended ${job.runnerBuild?.status}`;
      return this.recordFailed(install, job.component, job.buildId, job.deployId, 'apply', new Error(cause));
    }
    try {
      const result = await runner.finish(job.runner);
      return await this.recordDeployed(
        install,
        job.component,
        job.buildId,
        job.deployId,
        job.artifact,
        result,
      );
    } catch (error) {
      return this.recordFailed(install, job.component, job.buildId, job.deployId, 'outputs', error);
    }
  }

  private async recordDeployed(
    install: Install,
    component: string,
    buildId: string,
    deployId: string,
    artifact: { uri: string; digest?: string },
    result: ApplyResult,
  ): Promise<ComponentOutcome> {
    const sealedOutputs: Record<string, string> = {};
    const { sealer } = this.options;
    if (sealer) {
      for (const name of result.sensitiveOutputs ?? []) {
        const value = result.outputs[name];
        if (value !== undefined) {
          sealedOutputs[name] = await sealer.seal(value, { installId: install.id, component, output: name });
        }
      }
    }
    await this.options.deployments.record(
      install.id,
      install.appId,
      component,
      {
        status: 'deployed',
        buildId,
        digest: artifact.digest,
        outputs: {
          ...result.outputs,
          ...(artifact.digest && { 'image.uri': artifact.uri, 'image.digest': artifact.digest }),
        },
        sensitiveOutputs: result.sensitiveOutputs,
        sealedOutputs,
        releaseId: deployId,
      },
      DEPLOY_ACTOR,
    );
    return { component, status: 'deployed' };
  }

  private async recordFailed(
    install: Install,
    component: string,
    buildId: string,
    deployId: string,
    step: string,
    error: unknown,
  ): Promise<ComponentOutcome> {
    const cause = (error as Error).message;
    await this.options.deployments.record(
      install.id,
      install.appId,
      component,
      { status: 'failed', buildId, releaseId: deployId, error: this.errorOf(install, step, cause) },
      DEPLOY_ACTOR,
    );
    return { component, status: 'failed', cause: `${step}: ${cause}` };
  }

  /** Releases the install and records how the deploy ended. */
  async unlock(
    input: DeployInput & { outcomes?: ComponentOutcome[][]; error?: { Error?: string; Cause?: string } },
  ) {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const outcomes = (input.outcomes ?? []).flat();
    const count = (status: ComponentOutcome['status']) =>
      outcomes.filter((outcome) => outcome.status === status).length;
    const summary = { deployed: count('deployed'), failed: count('failed'), skipped: count('skipped') };
    const released = await this.options.lock.release(install.id, input.deployId);
    const failedBeforeDeploying = input.error !== undefined;
    const ok = !failedBeforeDeploying && summary.failed === 0 && summary.skipped === 0;
    const message = failedBeforeDeploying
      ? `deploy ${input.deployId} failed before deploying: ${input.error?.Cause ?? input.error?.Error}`
      : `deploy ${input.deployId} ${ok ? 'succeeded' : 'failed'}: ${summary.deployed} deployed, ${summary.failed} failed, ${summary.skipped} skipped`;
    await this.options.store.appendEvent({
      appId: install.appId,
      installId: install.id,
      type: ok ? 'install.deployed' : 'install.deploy-failed',
      actor: DEPLOY_ACTOR,
      message,
      data: {
        deployId: input.deployId,
        ...summary,
        failures: outcomes.filter((o) => o.status !== 'deployed'),
      },
    });
    return { ...summary, ok, released, message };
  }

  private async syncArtifact(
    install: Install,
    build: Build,
    deployId: string,
  ): Promise<{ uri: string; digest?: string; chart?: { repo: string; name: string; version: string } }> {
    if (build.artifact?.chart) return { uri: build.artifact.uri, chart: build.artifact.chart };
    const input = { installId: install.id, buildId: build.id, releaseId: deployId };
    const plan = await this.options.sync.plan(input);
    const copied = [];
    for (const blob of plan.blobs) {
      copied.push(
        await this.options.sync.copyBlob({
          ...input,
          sourceRepository: plan.source.repository,
          destinationRepository: plan.destination.repository,
          blob,
        }),
      );
    }
    const summary = await this.options.sync.finish({ ...input, plan, copied });
    return { uri: summary.destination, digest: summary.digest };
  }

  private errorOf(install: Install, step: string, cause: string) {
    return { step, account: install.accountId, region: install.region, cause };
  }
}

/**
 * What templates render from, for a deploy or a teardown: app defaults, the install's inputs
 * (sensitive ones opened with the tenant key), and the given components' recorded outputs
 * (sensitive ones opened when a sealer is given). The result holds secrets: it never leaves the
 * step that renders with it.
 */
export async function openRenderContext(
  options: { controlPlane: ControlPlane; sealer?: SecretSealer },
  install: Install,
  recorded: Iterable<[string, { outputs: Record<string, string> }]>,
  sealed: Readonly<Record<string, Record<string, string>>>,
): Promise<RenderContext> {
  const app = await options.controlPlane.getApp(install.appId);
  const sensitiveInputs =
    install.sensitiveInputs.length > 0 ? await options.controlPlane.openSensitiveInputs(install.id) : {};
  const opened: [string, { outputs: Record<string, string> }][] = [];
  for (const [name, record] of recorded) {
    const outputs = { ...record.outputs };
    if (options.sealer) {
      for (const [output, value] of Object.entries(sealed[name] ?? {})) {
        outputs[output] = await options.sealer.unseal(value, {
          installId: install.id,
          component: name,
          output,
        });
      }
    }
    opened.push([name, { outputs }]);
  }
  return renderContextFor(app, { ...install, inputs: { ...install.inputs, ...sensitiveInputs } }, opened);
}

/**
 * Why a runner build failed, from the error Step Functions caught: its Cause is the build as JSON;
 * say the phase that failed, its message, and where the logs are.
 */
export function runnerFailure(error: { Error?: string; Cause?: string }): string {
  try {
    const build = JSON.parse(error.Cause ?? '') as {
      Build?: {
        Id?: string;
        BuildStatus?: string;
        Phases?: { PhaseType?: string; PhaseStatus?: string; Contexts?: { Message?: string }[] }[];
        Logs?: { DeepLink?: string };
      };
    };
    const failed = build.Build?.Phases?.find(
      (phase) => phase.PhaseStatus && phase.PhaseStatus !== 'SUCCEEDED',
    );
    const message = failed?.Contexts?.map((context) => context.Message)
      .filter(Boolean)
      .join('; ');
    return (
      `the deploy runner's build ${build.Build?.Id ?? ''} ${build.Build?.BuildStatus ?? 'failed'}` +
      (failed ? ` in ${failed.PhaseType}${message ? `: ${message}` : ''}` : '') +
      (build.Build?.Logs?.DeepLink ? ` (logs: ${build.Build.Logs.DeepLink})` : '')
    );
  } catch {
    return `the deploy runner failed: ${error.Error ?? 'error'}${error.Cause ? `: ${error.Cause}` : ''}`;
  }
}
