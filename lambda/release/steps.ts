/**
 * The release workflow's steps (stepfunctions/release.asl.json): decide what comes next from the
 * release's counts, run a wave by starting one deploy-install execution per install and waiting
 * for the wave's last report, reconcile a wave whose installs stopped reporting, and finish.
 *
 * The workflow carries only the release id and the wave number: the installs, the builds and every
 * outcome live in the state table, so a release to 10,000 installs keeps its state small and its
 * history short (see docs/releases.md for the arithmetic).
 */

import type { ComponentOutcome } from '../deploy/steps';
import type { Release, Releases } from '../domain/releases';
import type { StateStore } from '../domain/state-store';
import { decide } from './waves';

export const RELEASE_ACTOR = 'workflow:release';

/**
 * Waves one release execution runs before it hands over to a fresh execution of itself. Each wave
 * costs about 19 history events (docs/releases.md), so 1,000 waves stay under 19,000 of the 25,000
 * events Step Functions allows an execution.
 */
export const MAX_WAVES_PER_EXECUTION = 1_000;

/** Starts and looks up deploy-install executions; Step Functions in AWS, the local runner locally. */
export interface DeployExecutions {
  /** Starts `name` with `input`; starting the same name and input again is not an error. */
  start(name: string, input: DeployInstallInput): Promise<void>;
  /** How an execution stands; `cause` says why it failed, timed out or was aborted. */
  describe(name: string): Promise<{ status: string; cause?: string }>;
}

/** Wakes a workflow waiting on a task token. */
export interface TaskNotifier {
  succeed(token: string, output: unknown): Promise<void>;
}

/** What a release starts each install's deploy-install execution with. */
export interface DeployInstallInput {
  readonly installId: string;
  readonly deployId: string;
  readonly builds: Record<string, string>;
  readonly release: { readonly releaseId: string; readonly wave: number };
}

export interface Decision {
  readonly action: 'next-wave' | 'continue' | 'stop' | 'done' | 'cancel';
  /** The wave to run next (for next-wave and continue). */
  readonly wave: number;
  /** Seconds to pause before that wave. */
  readonly pauseSeconds: number;
  readonly reason: string;
  /** Waves this execution will have run once `wave` ran. */
  readonly wavesInExecution: number;
}

/** How the deploy-install workflow summed up one install (its unlock step's result, or its refusal). */
export interface DeploySummary {
  readonly ok: boolean;
  readonly message: string;
  readonly refused?: boolean;
  readonly failures?: ComponentOutcome[];
}

export interface ReleaseStepsOptions {
  readonly releases: Releases;
  readonly store: StateStore;
  readonly executions: DeployExecutions;
  readonly notifier: TaskNotifier;
  /** Deploy-install executions started at once while running a wave. @default 16 */
  readonly startConcurrency?: number;
  /** @default MAX_WAVES_PER_EXECUTION */
  readonly maxWavesPerExecution?: number;
}

/** A deploy-install execution's name: unique per release and install, so a repeat start is harmless. */
export function deployExecutionName(releaseId: string, installId: string): string {
  return `${releaseId}-${installId}`;
}

export class ReleaseSteps {
  constructor(private readonly options: ReleaseStepsOptions) {}

  /** Counts the wave that just ended, then decides: the next wave, a fresh execution, or the end. */
  async decide(input: { releaseId: string; wavesInExecution?: number }): Promise<Decision> {
    const { releases } = this.options;
    let release = await releases.get(input.releaseId);
    if (release.currentWave > release.wavesRun) {
      release = await releases.tallyWave(release.id, release.currentWave);
    }
    const wavesInExecution = input.wavesInExecution ?? 0;
    const next = release.wavesRun + 1;
    const end = (action: Decision['action'], reason: string): Decision => ({
      action,
      wave: next,
      pauseSeconds: 0,
      reason,
      wavesInExecution,
    });
    if (release.status === 'cancelling') {
      return end('cancel', `cancelled by ${release.cancelRequestedBy} after ${waves(release.wavesRun)}`);
    }
    const decision = decide(
      {
        waveCount: release.waveCount,
        wavesRun: release.wavesRun,
        failures: release.counts.failed,
        attempted: release.counts.failed + release.counts.succeeded,
        notStarted: release.counts.pending,
      },
      release.strategy,
    );
    if (decision.action !== 'next-wave') return end(decision.action, decision.reason);
    if (wavesInExecution >= (this.options.maxWavesPerExecution ?? MAX_WAVES_PER_EXECUTION)) {
      return end('continue', `${decision.reason} in a fresh execution (history stays short)`);
    }
    return {
      action: 'next-wave',
      wave: next,
      pauseSeconds: release.wavesRun > 0 ? release.strategy.pauseSeconds : 0,
      reason: decision.reason,
      wavesInExecution: wavesInExecution + 1,
    };
  }

  /**
   * Runs one wave: opens it with the workflow's task token, then starts each install's deploy.
   * Returns at once; the wave's last report wakes the workflow. An install whose deploy cannot
   * start is reported failed with why, so the wave still ends.
   */
  async runWave(input: { releaseId: string; wave: number; taskToken: string }): Promise<void> {
    const { releases, executions, store } = this.options;
    const release = await releases.get(input.releaseId);
    const installs = await releases.waveInstalls(release.id, input.wave);
    await releases.openWave(release.id, input.wave, installs.length, input.taskToken);
    await store.appendEvent({
      appId: release.appId,
      type: 'release.wave-started',
      actor: RELEASE_ACTOR,
      message: `release ${release.id}: wave ${input.wave} of ${release.waveCount} started (${installs.length} installs)`,
      data: { releaseId: release.id, wave: input.wave, installs: installs.length },
    });
    let next = 0;
    const worker = async () => {
      while (next < installs.length) {
        const install = installs[next++];
        if (install.status !== 'pending' && install.status !== 'deploying') continue;
        await releases.markDeploying(release.id, input.wave, install.installId);
        try {
          await executions.start(deployExecutionName(release.id, install.installId), {
            installId: install.installId,
            deployId: release.id,
            builds: release.builds,
            release: { releaseId: release.id, wave: input.wave },
          });
        } catch (error) {
          await this.reportAndWake(release.id, input.wave, install.installId, 'failed', {
            cause: `its deploy did not start: ${(error as Error).message}`,
          });
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.options.startConcurrency ?? 16, installs.length) }, worker),
    );
    // Every install may have reported already (or the wave is empty): wake the workflow here.
    const token = await releases.claimWave(release.id, input.wave);
    if (token) await this.options.notifier.succeed(token, { wave: input.wave });
  }

  /** A deploy-install execution's last step: how this install's deploy ended. */
  async report(input: {
    installId: string;
    release: { releaseId: string; wave: number };
    summary: DeploySummary;
  }): Promise<{ recorded: 'succeeded' | 'failed' }> {
    const outcome = input.summary.ok ? 'succeeded' : 'failed';
    await this.reportAndWake(input.release.releaseId, input.release.wave, input.installId, outcome, {
      cause: input.summary.ok ? undefined : input.summary.message,
    });
    return { recorded: outcome };
  }

  /**
   * A wave that outlived its time limit: every install still deploying is looked up and recorded
   * failed with what became of its execution, so the release can decide.
   */
  async reconcileWave(input: { releaseId: string; wave: number }): Promise<{ reconciled: number }> {
    const { releases, executions } = this.options;
    const stuck = (await releases.waveInstalls(input.releaseId, input.wave)).filter(
      (install) => install.status === 'deploying' || install.status === 'pending',
    );
    for (const install of stuck) {
      const name = deployExecutionName(input.releaseId, install.installId);
      if (install.status === 'pending')
        await releases.markDeploying(input.releaseId, input.wave, install.installId);
      let cause: string;
      try {
        const execution = await executions.describe(name);
        cause =
          execution.status === 'RUNNING'
            ? `its deploy (execution ${name}) was still running when the wave's time ran out`
            : `its deploy (execution ${name}) ended ${execution.status} without reporting` +
              (execution.cause ? `: ${execution.cause}` : '');
      } catch (error) {
        cause = `its deploy (execution ${name}) cannot be found: ${(error as Error).message}`;
      }
      await this.reportAndWake(input.releaseId, input.wave, install.installId, 'failed', { cause });
    }
    return { reconciled: stuck.length };
  }

  /** Ends the release as decided: its final status, what never started, history. */
  async finish(input: {
    releaseId: string;
    decision: Pick<Decision, 'action' | 'reason'>;
  }): Promise<{ status: Release['status']; ok: boolean; message: string }> {
    const { releases } = this.options;
    const release = await releases.get(input.releaseId);
    const status =
      input.decision.action === 'cancel'
        ? 'cancelled'
        : input.decision.action === 'stop'
          ? 'stopped'
          : release.counts.failed === 0
            ? 'succeeded'
            : 'partially-succeeded';
    const finished = await releases.finish(release.id, { status, reason: input.decision.reason });
    return {
      status: finished.status,
      ok: finished.status === 'succeeded',
      message: `release ${release.id} ${finished.status}: ${finished.reason}`,
    };
  }

  /** The workflow itself broke: the release is recorded failed with the cause. */
  async fail(input: { releaseId: string; error?: { Error?: string; Cause?: string } }) {
    const cause = input.error?.Cause ?? input.error?.Error ?? 'unknown error';
    const failed = await this.options.releases.fail(input.releaseId, `the release workflow failed: ${cause}`);
    return { status: failed.status, ok: false, message: `release ${input.releaseId} failed: ${cause}` };
  }

  private async reportAndWake(
    releaseId: string,
    wave: number,
    installId: string,
    outcome: 'succeeded' | 'failed',
    detail: { cause?: string },
  ): Promise<void> {
    const token = await this.options.releases.report(releaseId, wave, installId, outcome, detail.cause);
    if (token) await this.options.notifier.succeed(token, { wave });
  }
}

function waves(count: number): string {
  return `${count} ${count === 1 ? 'wave' : 'waves'}`;
}
