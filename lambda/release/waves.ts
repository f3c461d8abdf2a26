/**
 * Release waves: how a release splits its installs into waves and whether it starts the next wave
 * once one finishes. Pure functions over plain data, so the release workflow, local mode and the
 * tests all decide the same way.
 */

import type { Problem } from '../domain/errors';

export interface ReleaseStrategy {
  /**
   * Installs per wave: a count (`waveSize`) or a percentage of all installs (`wavePercent`, 1-100,
   * rounded up, at least 1). Exactly one.
   */
  readonly waveSize?: number;
  readonly wavePercent?: number;
  /** Seconds to pause between waves. */
  readonly pauseSeconds: number;
  /**
   * How many failed installs (`maxFailures`) or what percentage of installs attempted so far
   * (`maxFailurePercent`) the release tolerates before it stops starting new waves. Exactly one;
   * 0 means stop at the first failure.
   */
  readonly maxFailures?: number;
  readonly maxFailurePercent?: number;
}

export type InstallOutcome = 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export interface WaveDecision {
  readonly action: 'next-wave' | 'stop' | 'done';
  /** A sentence a person can read in the release's history. */
  readonly reason: string;
  /** Installs in the waves run so far whose outcome is `failed`. */
  readonly failures: number;
  /** Installs in the waves run so far that ran to an end: `succeeded` or `failed`. */
  readonly attempted: number;
}

/** Step Functions' Wait state waits at most a year. */
export const MAX_PAUSE_SECONDS = 365 * 24 * 60 * 60;

const FIELDS = ['waveSize', 'wavePercent', 'pauseSeconds', 'maxFailures', 'maxFailurePercent'];

/** Checks an untrusted strategy (a request body's `strategy`); one problem per wrong field. */
export function validateStrategy(strategy: unknown): { strategy?: ReleaseStrategy; problems: Problem[] } {
  if (typeof strategy !== 'object' || strategy === null || Array.isArray(strategy)) {
    return { problems: [{ path: 'strategy', message: 'must be an object' }] };
  }
  const input = strategy as Record<string, unknown>;
  const problems: Problem[] = [];
  for (const key of Object.keys(input)) {
    if (!FIELDS.includes(key)) {
      problems.push({
        path: `strategy.${key}`,
        message: `is not a strategy field; use ${FIELDS.join(', ')}`,
      });
    }
  }
  const integer = (field: string, min: number, max: number): void => {
    const value = input[field];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      problems.push({ path: `strategy.${field}`, message: 'must be an integer' });
    } else if (value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
      problems.push({ path: `strategy.${field}`, message: `must be ${range}` });
    }
  };
  const exactlyOne = (a: string, b: string): void => {
    if (input[a] !== undefined && input[b] !== undefined) {
      problems.push({ path: `strategy.${b}`, message: `give either ${a} or ${b}, not both` });
    } else if (input[a] === undefined && input[b] === undefined) {
      problems.push({ path: `strategy.${a}`, message: `give either ${a} or ${b}` });
    }
  };

  exactlyOne('waveSize', 'wavePercent');
  integer('waveSize', 1, Number.MAX_SAFE_INTEGER);
  integer('wavePercent', 1, 100);
  if (input.pauseSeconds === undefined) {
    problems.push({ path: 'strategy.pauseSeconds', message: 'is required' });
  }
  integer('pauseSeconds', 0, MAX_PAUSE_SECONDS);
  exactlyOne('maxFailures', 'maxFailurePercent');
  integer('maxFailures', 0, Number.MAX_SAFE_INTEGER);
  integer('maxFailurePercent', 0, 100);

  if (problems.length > 0) return { problems };
  const valid: ReleaseStrategy = {
    pauseSeconds: input.pauseSeconds as number,
    ...(input.waveSize !== undefined ? { waveSize: input.waveSize as number } : {}),
    ...(input.wavePercent !== undefined ? { wavePercent: input.wavePercent as number } : {}),
    ...(input.maxFailures !== undefined ? { maxFailures: input.maxFailures as number } : {}),
    ...(input.maxFailurePercent !== undefined
      ? { maxFailurePercent: input.maxFailurePercent as number }
      : {}),
  };
  return { strategy: valid, problems };
}

/** How many installs each wave holds when a release goes to `installCount` installs. */
export function waveSizeFor(installCount: number, strategy: ReleaseStrategy): number {
  const size =
    strategy.waveSize ?? Math.max(1, Math.ceil((installCount * (strategy.wavePercent ?? 0)) / 100));
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`wave size must be a positive integer, got ${size}; validate the strategy first`);
  }
  return size;
}

/** Splits installs into waves in the order given; every wave but the last is full. */
export function planWaves(installIds: readonly string[], strategy: ReleaseStrategy): string[][] {
  const seen = new Set<string>();
  for (const id of installIds) {
    if (seen.has(id)) throw new RangeError(`install ${id} appears twice in the release`);
    seen.add(id);
  }
  const size = waveSizeFor(installIds.length, strategy);
  const waves: string[][] = [];
  for (let start = 0; start < installIds.length; start += size) {
    waves.push(installIds.slice(start, start + size));
  }
  return waves;
}

/** Where a release stands after some waves: what `decide` weighs. */
export interface ReleaseProgress {
  readonly waveCount: number;
  /** Waves that ran to their end. */
  readonly wavesRun: number;
  /** Installs in the waves run so far whose outcome is `failed`. */
  readonly failures: number;
  /** Installs in the waves run so far that ran to an end: `succeeded` or `failed`. */
  readonly attempted: number;
  /** Installs in the waves not run yet. */
  readonly notStarted: number;
}

/**
 * After a wave finishes, decide from counts alone (what the release workflow keeps). Stop when
 * failures exceed the tolerance (strictly more than maxFailures, or failures/attempted*100 more
 * than maxFailurePercent), even after the last wave, so the release reports that it broke its
 * tolerance; installs in waves never started become 'skipped' with the reason.
 */
export function decide(progress: ReleaseProgress, strategy: ReleaseStrategy): WaveDecision {
  const { waveCount, wavesRun, failures, attempted } = progress;
  if (!Number.isInteger(wavesRun) || wavesRun < 0 || wavesRun > waveCount) {
    throw new RangeError(`wavesRun must be between 0 and ${waveCount}, got ${wavesRun}`);
  }
  const tally = `${failures} of ${installs(attempted)} failed`;
  const tolerance = describeTolerance(failures, attempted, strategy);

  if (tolerance.exceeded) {
    const left = waveCount - wavesRun;
    const notStarted =
      left === 0
        ? 'no waves were left to start'
        : `${left === 1 ? `wave ${wavesRun + 1}` : `waves ${wavesRun + 1}-${waveCount}`} ` +
          `(${installs(progress.notStarted)}) not started`;
    return { action: 'stop', reason: `${tally}${tolerance.text}; ${notStarted}`, failures, attempted };
  }
  if (wavesRun === waveCount) {
    return {
      action: 'done',
      reason: `all ${waveCount} ${waveCount === 1 ? 'wave' : 'waves'} ran; ${tally}${tolerance.text}`,
      failures,
      attempted,
    };
  }
  const ran = wavesRun === 0 ? 'no wave ran yet' : `wave ${wavesRun} of ${waveCount} ran`;
  return {
    action: 'next-wave',
    reason: `${ran}; ${tally}${tolerance.text}; starting wave ${wavesRun + 1}`,
    failures,
    attempted,
  };
}

/** `decide` over planned waves and each install's outcome (installId -> outcome). */
export function decideAfterWave(
  waves: readonly string[][],
  wavesRun: number,
  outcomes: ReadonlyMap<string, InstallOutcome>,
  strategy: ReleaseStrategy,
): WaveDecision {
  if (!Number.isInteger(wavesRun) || wavesRun < 0 || wavesRun > waves.length) {
    throw new RangeError(`wavesRun must be between 0 and ${waves.length}, got ${wavesRun}`);
  }
  let failures = 0;
  let attempted = 0;
  for (const id of waves.slice(0, wavesRun).flat()) {
    const outcome = outcomes.get(id);
    if (outcome === 'failed') failures += 1;
    if (outcome === 'failed' || outcome === 'succeeded') attempted += 1;
  }
  const notStarted = skippedInstalls(waves, wavesRun).length;
  return decide({ waveCount: waves.length, wavesRun, failures, attempted, notStarted }, strategy);
}

/** The installs in waves never started, in wave order. */
export function skippedInstalls(waves: readonly string[][], wavesRun: number): string[] {
  return waves.slice(wavesRun).flat();
}

function describeTolerance(
  failures: number,
  attempted: number,
  strategy: ReleaseStrategy,
): { exceeded: boolean; text: string } {
  // `text` follows "3 of 20 installs failed": ", more than the 2 tolerated" or " (15%), within …".
  if (strategy.maxFailurePercent !== undefined) {
    const limit = strategy.maxFailurePercent;
    // Compare in integers: failures / attempted * 100 > limit, without rounding error.
    const exceeded = failures * 100 > limit * attempted;
    const share = attempted === 0 ? 0 : Math.round((failures * 1000) / attempted) / 10;
    return { exceeded, text: ` (${share}%), ${exceeded ? 'more than' : 'within'} the ${limit}% tolerated` };
  }
  const limit = strategy.maxFailures ?? 0;
  const exceeded = failures > limit;
  if (limit === 0) return { exceeded, text: ', and none are tolerated' };
  return { exceeded, text: `, ${exceeded ? 'more than' : 'within'} the ${limit} tolerated` };
}

function installs(count: number): string {
  return `${count} ${count === 1 ? 'install' : 'installs'}`;
}
