/**
 * Local mode's releases: the release and deploy-install definitions run on aws-local-stepfunctions
 * with the same steps Lambda runs. What Step Functions does in AWS is done here in-process:
 * deploy-install executions start in the background by name, a waiting wave is woken through a
 * promise per task token, and "continue as new" runs the release definition again.
 */
import { randomUUID } from 'node:crypto';
import type { Platform } from '../lambda/deploy/platform';
import { type DeployRunner, DeploySteps } from '../lambda/deploy/steps';
import { TeardownSteps } from '../lambda/deploy/teardown';
import type { TeardownStarter } from '../lambda/deploy/teardown-starter';
import type { Builds } from '../lambda/domain/builds';
import type { ControlPlane } from '../lambda/domain/control-plane';
import { Deployments } from '../lambda/domain/deployments';
import { InstallLock } from '../lambda/domain/install-lock';
import { Releases } from '../lambda/domain/releases';
import type { SecretSealer } from '../lambda/domain/secrets';
import type { StateStore } from '../lambda/domain/state-store';
import type { RegistryClient } from '../lambda/oci/client';
import type { ReleaseStarter } from '../lambda/release/aws';
import {
  type DeployExecutions,
  type DeployInstallInput,
  ReleaseSteps,
  type ReleaseStepsOptions,
  type TaskNotifier,
} from '../lambda/release/steps';
import type { InstallAccess } from '../lambda/sync/access';
import { SyncSteps } from '../lambda/sync/steps';
import { localInstallPrefix } from './install-access';
import { runWorkflow, type TaskHandler, type WorkflowRun } from './stepfunctions';

/**
 * The deploy-install definition's Task states, mapped to the steps. Local mode's platform applies
 * every component itself, so the deploy runner's build never starts unless a test stands one in.
 */
export function deployInstallTasks(
  deploy: DeploySteps,
  release?: Pick<ReleaseSteps, 'report'>,
  runDeployRunner?: TaskHandler,
): Record<string, TaskHandler> {
  return {
    LockInstall: (input) => deploy.lock(input),
    PlanDeploy: (input) => deploy.plan(input),
    DeployComponent: (input) => deploy.deployComponent(input),
    RunDeployRunner:
      runDeployRunner ??
      (() => {
        throw new Error('local mode has no deploy runner: its platform applies every component itself');
      }),
    FinishComponent: (input) => deploy.finishComponent(input),
    UnlockInstall: (input) => deploy.unlock(input),
    UnlockAfterError: (input) => deploy.unlock(input),
    ReportToRelease: (input) => {
      if (!release) throw new Error('this deploy was started by a release, but no release steps were given');
      return release.report(input);
    },
  };
}

/** The teardown-install definition's Task states, mapped to the steps. */
export function teardownInstallTasks(
  steps: TeardownSteps,
  runDeployRunner?: TaskHandler,
): Record<string, TaskHandler> {
  return {
    LockInstall: (input) => steps.lock(input),
    PlanTeardown: (input) => steps.plan(input),
    DestroyComponent: (input) => steps.destroyComponent(input),
    RunDeployRunner:
      runDeployRunner ??
      (() => {
        throw new Error('local mode has no deploy runner: its platform removes every component itself');
      }),
    FinishDestroy: (input) => steps.finishDestroy(input),
    FinishTeardown: (input) => steps.finish(input),
    UnlockAfterError: (input) => steps.finish(input),
  };
}

/** Runs teardowns in the background: the local stand-in for starting the teardown workflow. */
export class LocalTeardownRunner implements TeardownStarter {
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    private readonly steps: TeardownSteps,
    private readonly onFinished?: (installId: string, run: WorkflowRun) => void,
  ) {}

  async start(installId: string, teardownId: string): Promise<void> {
    const run = runWorkflow(
      'teardown-install',
      { installId, teardownId },
      {
        executionName: teardownId,
        tasks: teardownInstallTasks(this.steps),
      },
    ).then((result) => this.onFinished?.(installId, result));
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}

/** Wakes waiting waves: the local stand-in for SendTaskSuccess. */
export class LocalTaskNotifier implements TaskNotifier {
  private readonly waiting = new Map<string, (output: unknown) => void>();
  private readonly early = new Map<string, unknown>();

  /** Resolves when `token` is succeeded (before or after this call). */
  wait(token: string): Promise<unknown> {
    if (this.early.has(token)) {
      const output = this.early.get(token);
      this.early.delete(token);
      return Promise.resolve(output);
    }
    return new Promise((resolve) => this.waiting.set(token, resolve));
  }

  async succeed(token: string, output: unknown): Promise<void> {
    const resolve = this.waiting.get(token);
    if (!resolve) {
      this.early.set(token, output);
      return;
    }
    this.waiting.delete(token);
    resolve(output);
  }
}

/** Deploy-install executions, run in the background by name. */
export class LocalDeployExecutions implements DeployExecutions {
  private readonly runs = new Map<
    string,
    { status: string; cause?: string; done: Promise<void>; result?: WorkflowRun }
  >();

  constructor(private readonly run: (name: string, input: DeployInstallInput) => Promise<WorkflowRun>) {}

  async start(name: string, input: DeployInstallInput): Promise<void> {
    if (this.runs.has(name)) return;
    const entry: { status: string; cause?: string; done: Promise<void>; result?: WorkflowRun } = {
      status: 'RUNNING',
      done: Promise.resolve(),
    };
    entry.done = this.run(name, input).then(
      (result) => {
        entry.status = result.status;
        entry.cause = result.cause;
        entry.result = result;
      },
      (error: Error) => {
        entry.status = 'FAILED';
        entry.cause = error.message;
      },
    );
    this.runs.set(name, entry);
  }

  async describe(name: string): Promise<{ status: string; cause?: string }> {
    const entry = this.runs.get(name);
    if (!entry) throw new Error(`execution ${name} does not exist`);
    return { status: entry.status, ...(entry.cause && { cause: entry.cause }) };
  }

  /** Resolves when every execution started so far has ended. */
  async idle(): Promise<void> {
    await Promise.all([...this.runs.values()].map((entry) => entry.done));
  }

  /** The executions that ended, by name. */
  finished(): Map<string, WorkflowRun> {
    const done = new Map<string, WorkflowRun>();
    for (const [name, entry] of this.runs) if (entry.result) done.set(name, entry.result);
    return done;
  }
}

export interface LocalReleaseRunnerOptions {
  readonly steps: ReleaseSteps;
  readonly notifier: LocalTaskNotifier;
  /** Seconds each pause between waves lasts locally. @default as the strategy says */
  readonly pauseSeconds?: number;
  /** Told of every release execution that ends. */
  readonly onFinished?: (releaseId: string, run: WorkflowRun) => void;
}

/** Starts releases: the release definition, run in the background. */
export class LocalReleaseRunner implements ReleaseStarter {
  private readonly running = new Set<Promise<unknown>>();
  /** Every release execution run, "continue as new" ones included, by execution name. */
  readonly runs = new Map<string, WorkflowRun>();

  constructor(private readonly options: LocalReleaseRunnerOptions) {}

  async start(releaseId: string): Promise<void> {
    const run = this.execute(releaseId, { releaseId, wavesInExecution: 0 }).then((result) =>
      this.options.onFinished?.(releaseId, result),
    );
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  /** Runs one release execution to its end (a continued one ends when its successor does). */
  execute(name: string, input: { releaseId: string; wavesInExecution: number }): Promise<WorkflowRun> {
    const { steps, notifier } = this.options;
    return runWorkflow('release', input, {
      executionName: name,
      ...(this.options.pauseSeconds !== undefined && {
        waitOverrides: { PauseBetweenWaves: this.options.pauseSeconds * 1000 },
      }),
      tasks: {
        Decide: (i) => steps.decide(i),
        RunWave: async (i) => {
          const token = randomUUID();
          await steps.runWave({ ...i.Payload, taskToken: token });
          return notifier.wait(token);
        },
        ReconcileWave: (i) => steps.reconcileWave(i),
        Finish: (i) => steps.finish(i),
        RecordFailure: (i) => steps.fail(i),
        ContinueAsNew: async (i: {
          Name: string;
          Input: { releaseId: string; wavesInExecution: number };
        }) => {
          // Step Functions would run the successor on its own; locally it runs before this one ends.
          await this.execute(i.Name, {
            releaseId: i.Input.releaseId,
            wavesInExecution: i.Input.wavesInExecution,
          });
          return {};
        },
      },
    }).then((result) => {
      this.runs.set(name, result);
      return result;
    });
  }

  /** Resolves when every release started so far has ended. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}

export interface LocalReleaseRuntimeOptions {
  readonly controlPlane: ControlPlane;
  readonly builds: Builds;
  readonly store: StateStore;
  /** The tenant registry builds pushed to. */
  readonly tenantRegistry: RegistryClient;
  /** Reaches installs' registries (each install its own namespace). */
  readonly installAccess: InstallAccess;
  /** Applies components. */
  readonly platform: Platform;
  readonly pauseSeconds?: number;
  readonly maxWavesPerExecution?: ReleaseStepsOptions['maxWavesPerExecution'];
  readonly onReleaseFinished?: LocalReleaseRunnerOptions['onFinished'];
  readonly onTeardownFinished?: (installId: string, run: WorkflowRun) => void;
  /** Seals sensitive outputs for dependants (the control plane's sealer opens sensitive inputs). */
  readonly sealer?: SecretSealer;
}

/**
 * The deploy-install steps as local mode wires them: sync through the install access into each
 * install's namespace, apply on the given platform.
 */
export function localDeploySteps(
  options: Pick<
    LocalReleaseRuntimeOptions,
    'controlPlane' | 'builds' | 'store' | 'tenantRegistry' | 'installAccess' | 'platform' | 'sealer'
  > & { deployments?: Deployments; lock?: InstallLock; runner?: DeployRunner },
): DeploySteps {
  const { controlPlane, builds, store } = options;
  return new DeploySteps({
    controlPlane,
    builds,
    deployments: options.deployments ?? new Deployments(store),
    lock: options.lock ?? new InstallLock(store),
    store,
    sync: new SyncSteps({
      controlPlane,
      builds,
      store,
      tenantRegistry: async () => options.tenantRegistry,
      access: options.installAccess,
      destinationPrefix: localInstallPrefix,
    }),
    platform: options.platform,
    sealer: options.sealer,
    runner: options.runner,
  });
}

/** Everything local mode needs to run releases, wired as Lambda wires it in AWS. */
export function localReleaseRuntime(options: LocalReleaseRuntimeOptions) {
  const { controlPlane, store } = options;
  const releases = new Releases(store);
  const deployments = new Deployments(store);
  const deploySteps = localDeploySteps({ ...options, deployments });
  const notifier = new LocalTaskNotifier();
  let releaseSteps: ReleaseSteps | undefined;
  const executions = new LocalDeployExecutions((name, input) =>
    runWorkflow('deploy-install', input, {
      executionName: name,
      tasks: deployInstallTasks(deploySteps, releaseSteps),
    }),
  );
  releaseSteps = new ReleaseSteps({
    releases,
    store,
    executions,
    notifier,
    maxWavesPerExecution: options.maxWavesPerExecution,
  });
  const releaseRunner = new LocalReleaseRunner({
    steps: releaseSteps,
    notifier,
    pauseSeconds: options.pauseSeconds,
    onFinished: options.onReleaseFinished,
  });
  const teardownRunner = new LocalTeardownRunner(
    new TeardownSteps({
      controlPlane,
      deployments,
      lock: new InstallLock(store),
      store,
      platform: options.platform,
      sealer: options.sealer,
    }),
    options.onTeardownFinished,
  );
  return {
    releases,
    deployments,
    deploySteps,
    releaseSteps,
    executions,
    notifier,
    releaseRunner,
    teardownRunner,
  };
}
