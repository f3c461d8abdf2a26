/**
 * The teardown-install workflow's steps (stepfunctions/teardown-install.asl.json): lock the install,
 * order what is recorded in it by the component graph in reverse (dependants first), destroy each
 * component (its spec rendered from the install and the outputs its upstream components recorded),
 * and finish: unlock, and when everything is removed, delete the install from the control plane. A
 * component whose dependants could not be removed is kept, so nothing is left depending on a
 * component that is gone; every outcome is recorded with its history event.
 */
import type { Component, ControlPlane, Install } from '../domain/control-plane';
import type { DeployedComponent, DeploymentRecord, Deployments } from '../domain/deployments';
import { DomainError, NotFoundError } from '../domain/errors';
import { levels } from '../domain/graph';
import type { InstallLock } from '../domain/install-lock';
import type { SecretSealer } from '../domain/secrets';
import type { StateStore } from '../domain/state-store';
import type { RenderContext } from '../domain/templates';
import { renderForInstall } from './plan';
import type { Platform } from './platform';
import type { RunnerJob } from './runner-platform';
import { type DeployRunner, LOCK_SECONDS, openRenderContext, runnerFailure } from './steps';

export const TEARDOWN_ACTOR = 'workflow:teardown-install';

export interface TeardownInput {
  readonly installId: string;
  /**
   * Names this teardown: the lock's owner, the session name in the install's account, the id the
   * install's records and events carry. A new teardown of the same install needs a new id.
   */
  readonly teardownId: string;
}

export interface TeardownOutcome {
  readonly component: string;
  readonly status: 'removed' | 'failed' | 'skipped';
  readonly cause?: string;
}

export interface TeardownSummary {
  readonly removed: number;
  readonly failed: number;
  readonly skipped: number;
  /** Every component removed and the install deleted. */
  readonly ok: boolean;
  /** The install is gone from the control plane. */
  readonly deleted: boolean;
  /** This finish released the lock (false when it was not held, or went with the install). */
  readonly released: boolean;
  readonly message: string;
}

export interface TeardownStepsOptions {
  readonly controlPlane: ControlPlane;
  readonly deployments: Deployments;
  readonly lock: InstallLock;
  readonly store: StateStore;
  /** Where components are removed from. */
  readonly platform: Required<Pick<Platform, 'destroy'>>;
  /** Removes the components it handles on the deploy runner (AWS); without it the platform removes all. */
  readonly runner?: DeployRunner;
  /** Opens sensitive outputs for rendering (as the deploy sealed them). @default none */
  readonly sealer?: SecretSealer;
}

/** A component handed to the deploy runner to remove: what finishDestroy needs to record it. */
export interface RemovingComponent extends TeardownInput {
  readonly component: string;
  readonly status: 'running';
  readonly runner: RunnerJob;
  readonly runnerBuild?: { id: string; status: string };
  readonly runnerError?: { Error?: string; Cause?: string };
}

export class TeardownSteps {
  constructor(private readonly options: TeardownStepsOptions) {}

  /** Takes the install's lock for the teardown; refuses an install that does not exist or is locked. */
  async lock(input: TeardownInput): Promise<{ lockedUntil: number }> {
    await this.options.controlPlane.getInstall(input.installId);
    const held = await this.options.lock.acquire(input.installId, input.teardownId, LOCK_SECONDS);
    return { lockedUntil: held.expiresAt };
  }

  /**
   * Every component recorded in the install and not removed yet, in levels of the reversed graph:
   * a component comes after every component that depends on it. A failed or skipped record counts:
   * it may sit over an earlier deploy that is still running.
   */
  async plan(input: TeardownInput): Promise<{ levels: string[][] }> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const present = (await this.options.deployments.list(install.id))
      .filter((record) => record.status !== 'removed')
      .map((record) => record.component);
    const components = await this.options.controlPlane.allComponents(install.appId);
    return {
      levels: levels(
        present.map((name) => ({ name, dependsOn: dependantsAmong(name, present, components) })),
      ),
    };
  }

  /** Removes one component; never throws, so its level finishes: the outcome says what happened. */
  async destroyComponent(
    input: TeardownInput & { component: string },
  ): Promise<TeardownOutcome | RemovingComponent> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const recorded = await this.options.deployments.listWithSealed(install.id);
    const records = new Map(recorded.records.map((record) => [record.component, record]));
    const record = records.get(input.component);
    // Nothing recorded, removed by an earlier teardown, or by this one (a retried step).
    if (!record || record.status === 'removed') return { component: input.component, status: 'removed' };
    // A retried step: this teardown recorded it already; answer the same without writing again.
    if (record.releaseId === input.teardownId && record.status !== 'deployed') {
      const { error } = record;
      const cause = error && (record.status === 'failed' ? `${error.step}: ${error.cause}` : error.cause);
      return { component: record.component, status: record.status, ...(cause && { cause }) };
    }
    const components = await this.options.controlPlane.allComponents(install.appId);
    const present = [...records.values()]
      .filter((other) => other.status !== 'removed')
      .map((other) => other.component);
    const kept = dependantsAmong(input.component, present, components);
    if (kept.length > 0) {
      const cause = `kept because ${kept.join(', ')} ${kept.length === 1 ? 'was' : 'were'} not removed in ${input.teardownId}`;
      await this.recordKept(install, record, input.teardownId, 'skipped', 'dependants', cause);
      return { component: record.component, status: 'skipped', cause };
    }
    let step = 'render';
    try {
      const component = components.find((candidate) => candidate.name === record.component);
      if (!component) {
        throw new Error(
          `component ${record.component} is no longer in app ${install.appId}, so what it deployed is not` +
            ' known; put it back in the app and tear down again',
        );
      }
      const spec = renderForInstall(
        component.spec,
        await this.renderContext(install, records, recorded.sealedOutputs),
      );
      step = 'destroy';
      const uri = record.outputs['image.uri'];
      const request = {
        install,
        deployId: input.teardownId,
        component: record.component,
        spec,
        ...(uri && record.digest && { artifact: { uri, digest: record.digest } }),
      };
      const { runner } = this.options;
      if (runner?.handles(spec)) {
        const removing: RemovingComponent = {
          installId: input.installId,
          teardownId: input.teardownId,
          component: record.component,
          status: 'running',
          runner: await runner.prepare({ ...request, artifact: request.artifact ?? { uri: '' } }, 'destroy'),
        };
        return removing;
      }
      await this.options.platform.destroy(request);
      return await this.recordRemoved(install, record, input.teardownId);
    } catch (error) {
      const cause = (error as Error).message;
      await this.recordKept(install, record, input.teardownId, 'failed', step, cause);
      return { component: record.component, status: 'failed', cause: `${step}: ${cause}` };
    }
  }

  /** After the deploy runner's build: the component removed, or kept with the failed phase and why. */
  async finishDestroy(input: { job: RemovingComponent }): Promise<TeardownOutcome> {
    const { job } = input;
    const runner = this.options.runner;
    if (!runner) throw new Error('finish-destroy: this teardown has no deploy runner');
    const install = await this.options.controlPlane.getInstall(job.installId);
    const record = (await this.options.deployments.list(install.id)).find(
      (r) => r.component === job.component,
    );
    if (!record) return { component: job.component, status: 'removed' };
    if (job.runnerError || job.runnerBuild?.status !== 'SUCCEEDED') {
      await runner.discard(job.runner);
      const cause = job.runnerError
        ? runnerFailure(job.runnerError)
        : `the deploy runner's build ${job.runnerBuild?.id} ended ${job.runnerBuild?.status}`;
      await this.recordKept(install, record, job.teardownId, 'failed', 'destroy', cause);
      return { component: job.component, status: 'failed', cause: `destroy: ${cause}` };
    }
    await runner.finish(job.runner);
    return this.recordRemoved(install, record, job.teardownId);
  }

  private async recordRemoved(
    install: Install,
    record: DeployedComponent,
    teardownId: string,
  ): Promise<TeardownOutcome> {
    await this.options.deployments.record(
      install.id,
      install.appId,
      record.component,
      {
        status: 'removed',
        ...(record.buildId !== undefined && { buildId: record.buildId }),
        ...(record.digest !== undefined && { digest: record.digest }),
        releaseId: teardownId,
      },
      TEARDOWN_ACTOR,
    );
    return { component: record.component, status: 'removed' };
  }

  /**
   * Ends the teardown: when every component was removed, deletes the install (its history event
   * `install.removed`, and the lock, in the same transaction); otherwise releases the lock and
   * records `install.teardown-failed` saying what is kept and why.
   */
  async finish(
    input: TeardownInput & {
      outcomes?: TeardownOutcome[][];
      error?: { Error?: string; Cause?: string };
    },
  ): Promise<TeardownSummary> {
    const outcomes = (input.outcomes ?? []).flat();
    const count = (status: TeardownOutcome['status']) =>
      outcomes.filter((outcome) => outcome.status === status).length;
    const counts = { removed: count('removed'), failed: count('failed'), skipped: count('skipped') };
    const clean = input.error === undefined && counts.failed === 0 && counts.skipped === 0;

    let install: Install;
    try {
      install = await this.options.controlPlane.getInstall(input.installId);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      // A retried finish whose first attempt deleted the install, or an install that never existed.
      const released = await this.options.lock.release(input.installId, input.teardownId);
      return {
        ...counts,
        ok: clean,
        deleted: clean,
        released,
        message: clean
          ? `install ${input.installId} removed by teardown ${input.teardownId}`
          : `teardown ${input.teardownId} failed: install ${input.installId} does not exist`,
      };
    }

    if (clean) {
      const message = `install ${install.id} removed by teardown ${input.teardownId}: ${counts.removed} component(s) removed, install deleted`;
      try {
        await this.options.controlPlane.deleteInstall(install.id, TEARDOWN_ACTOR, {
          lockOwner: input.teardownId,
          event: {
            type: 'install.removed',
            message,
            data: { teardownId: input.teardownId, ...counts },
          },
        });
        return { ...counts, ok: true, deleted: true, released: true, message };
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        return this.failed(
          install,
          input.teardownId,
          counts,
          [],
          `the install was not deleted: ${error.message}`,
        );
      }
    }
    const failures = outcomes.filter((outcome) => outcome.status !== 'removed');
    const why = input.error
      ? `it stopped: ${input.error.Cause ?? input.error.Error}`
      : failures.map((outcome) => `${outcome.component}: ${outcome.cause}`).join('; ');
    return this.failed(install, input.teardownId, counts, failures, why);
  }

  private async failed(
    install: Install,
    teardownId: string,
    counts: { removed: number; failed: number; skipped: number },
    failures: TeardownOutcome[],
    why: string,
  ): Promise<TeardownSummary> {
    const released = await this.options.lock.release(install.id, teardownId);
    const message = `teardown ${teardownId} failed: ${counts.removed} removed, ${counts.failed} failed, ${counts.skipped} skipped; install ${install.id} is kept (${why})`;
    // A retried finish finds its event written already: history gets it once.
    const latest = await this.options.controlPlane.listInstallEvents(install.id, { limit: 5 });
    const written = latest.items.some(
      (event) => event.type === 'install.teardown-failed' && event.data.teardownId === teardownId,
    );
    if (!written) {
      await this.options.store.appendEvent({
        appId: install.appId,
        installId: install.id,
        type: 'install.teardown-failed',
        actor: TEARDOWN_ACTOR,
        message,
        data: { teardownId, ...counts, failures },
      });
    }
    return { ...counts, ok: false, deleted: false, released, message };
  }

  /** Records a component that stays, keeping what it recorded (outputs for its dependants' next attempt). */
  private async recordKept(
    install: Install,
    record: DeployedComponent,
    teardownId: string,
    status: 'failed' | 'skipped',
    step: string,
    cause: string,
  ): Promise<void> {
    const kept: DeploymentRecord = {
      status,
      ...(record.buildId !== undefined && { buildId: record.buildId }),
      ...(record.digest !== undefined && { digest: record.digest }),
      outputs: record.outputs,
      sensitiveOutputs: record.sensitiveOutputs,
      releaseId: teardownId,
      error: { step, account: install.accountId, region: install.region, cause },
      operation: 'teardown',
    };
    await this.options.deployments.record(install.id, install.appId, record.component, kept, TEARDOWN_ACTOR);
  }

  /** As a deploy renders: app defaults, install inputs, and what the components still present recorded. */
  private renderContext(
    install: Install,
    records: ReadonlyMap<string, DeployedComponent>,
    sealed: Record<string, Record<string, string>>,
  ): Promise<RenderContext> {
    const present = [...records].filter(([, record]) => record.status !== 'removed');
    return openRenderContext(this.options, install, present, sealed);
  }
}

/** The components among `present` that depend directly on `name`, sorted. */
function dependantsAmong(
  name: string,
  present: readonly string[],
  components: readonly Component[],
): string[] {
  const presentSet = new Set(present);
  return components
    .filter((component) => presentSet.has(component.name) && component.dependencies.includes(name))
    .map((component) => component.name)
    .sort();
}
