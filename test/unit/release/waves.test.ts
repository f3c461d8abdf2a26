import {
  decideAfterWave,
  type InstallOutcome,
  planWaves,
  type ReleaseStrategy,
  skippedInstalls,
  validateStrategy,
  type WaveDecision,
} from '../../../lambda/release/waves';

/** `ids(3)` is `['i-01', 'i-02', 'i-03']`. */
function ids(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `i-${String(i + 1).padStart(2, '0')}`);
}

function sizes(waves: string[][]): number[] {
  return waves.map((wave) => wave.length);
}

/**
 * Runs a release the way the workflow does: one wave at a time, every install in a wave ends as
 * `failing` says, a decision after each wave; on stop the waves not started are skipped.
 */
function runRelease(
  installIds: readonly string[],
  strategy: ReleaseStrategy,
  failing: ReadonlySet<string>,
): { outcomes: Map<string, InstallOutcome>; decisions: WaveDecision[]; reasons: Map<string, string> } {
  const waves = planWaves(installIds, strategy);
  const outcomes = new Map<string, InstallOutcome>();
  const reasons = new Map<string, string>();
  const decisions: WaveDecision[] = [];
  for (let wavesRun = 1; wavesRun <= waves.length; wavesRun += 1) {
    for (const id of waves[wavesRun - 1]) outcomes.set(id, failing.has(id) ? 'failed' : 'succeeded');
    const decision = decideAfterWave(waves, wavesRun, outcomes, strategy);
    decisions.push(decision);
    if (decision.action === 'stop') {
      for (const id of skippedInstalls(waves, wavesRun)) {
        outcomes.set(id, 'skipped');
        reasons.set(id, decision.reason);
      }
    }
    if (decision.action !== 'next-wave') break;
  }
  return { outcomes, decisions, reasons };
}

function count(outcomes: ReadonlyMap<string, InstallOutcome>, outcome: InstallOutcome): number {
  return [...outcomes.values()].filter((value) => value === outcome).length;
}

describe('planWaves', () => {
  it('splits installs into waves of waveSize, the last wave holding the rest', () => {
    expect(sizes(planWaves(ids(23), { waveSize: 10, pauseSeconds: 0, maxFailures: 0 }))).toEqual([10, 10, 3]);
  });

  it('keeps the order of the installs given', () => {
    const installIds = ['c', 'a', 'b', 'e', 'd'];

    expect(planWaves(installIds, { waveSize: 2, pauseSeconds: 0, maxFailures: 0 })).toEqual([
      ['c', 'a'],
      ['b', 'e'],
      ['d'],
    ]);
  });

  it('rounds a wavePercent up to whole installs', () => {
    const strategy = { wavePercent: 10, pauseSeconds: 0, maxFailures: 0 };

    expect(sizes(planWaves(ids(50), strategy))).toEqual([5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
    expect(sizes(planWaves(ids(23), strategy))).toEqual([3, 3, 3, 3, 3, 3, 3, 2]);
    expect(sizes(planWaves(ids(7), { ...strategy, wavePercent: 30 }))).toEqual([3, 3, 1]);
  });

  it('puts at least one install in a wave whatever the percentage', () => {
    expect(sizes(planWaves(ids(3), { wavePercent: 1, pauseSeconds: 0, maxFailures: 0 }))).toEqual([1, 1, 1]);
  });

  it('makes one wave when the wave is larger than the release', () => {
    expect(planWaves(ids(4), { waveSize: 10, pauseSeconds: 0, maxFailures: 0 })).toEqual([ids(4)]);
    expect(sizes(planWaves(ids(4), { wavePercent: 100, pauseSeconds: 0, maxFailures: 0 }))).toEqual([4]);
  });

  it('makes one wave of one for a release to a single install', () => {
    expect(planWaves(['only'], { waveSize: 5, pauseSeconds: 0, maxFailures: 0 })).toEqual([['only']]);
    expect(planWaves(['only'], { wavePercent: 10, pauseSeconds: 0, maxFailures: 0 })).toEqual([['only']]);
  });

  it('makes no waves for no installs', () => {
    expect(planWaves([], { waveSize: 5, pauseSeconds: 0, maxFailures: 0 })).toEqual([]);
  });

  it('refuses an install listed twice', () => {
    expect(() => planWaves(['a', 'b', 'a'], { waveSize: 5, pauseSeconds: 0, maxFailures: 0 })).toThrow(
      'install a appears twice',
    );
  });
});

describe('validateStrategy', () => {
  function paths(strategy: unknown): string[] {
    return validateStrategy(strategy).problems.map((problem) => problem.path);
  }

  it('accepts a strategy with a wave size and a failure count', () => {
    const strategy = { waveSize: 10, pauseSeconds: 60, maxFailures: 2 };

    expect(validateStrategy(strategy)).toEqual({ strategy, problems: [] });
  });

  it('accepts a strategy in percentages', () => {
    const strategy = { wavePercent: 100, pauseSeconds: 0, maxFailurePercent: 0 };

    expect(validateStrategy(strategy)).toEqual({ strategy, problems: [] });
  });

  it('refuses both waveSize and wavePercent', () => {
    const result = validateStrategy({ waveSize: 10, wavePercent: 10, pauseSeconds: 0, maxFailures: 0 });

    expect(result.strategy).toBeUndefined();
    expect(result.problems).toEqual([
      { path: 'strategy.wavePercent', message: 'give either waveSize or wavePercent, not both' },
    ]);
  });

  it('refuses neither waveSize nor wavePercent', () => {
    expect(validateStrategy({ pauseSeconds: 0, maxFailures: 0 }).problems).toEqual([
      { path: 'strategy.waveSize', message: 'give either waveSize or wavePercent' },
    ]);
  });

  it('refuses both or neither of maxFailures and maxFailurePercent', () => {
    expect(paths({ waveSize: 1, pauseSeconds: 0, maxFailures: 1, maxFailurePercent: 5 })).toEqual([
      'strategy.maxFailurePercent',
    ]);
    expect(paths({ waveSize: 1, pauseSeconds: 0 })).toEqual(['strategy.maxFailures']);
  });

  it('refuses negative numbers', () => {
    const result = validateStrategy({ waveSize: -1, pauseSeconds: -5, maxFailures: -1 });

    expect(result.problems).toEqual([
      { path: 'strategy.waveSize', message: 'must be at least 1' },
      { path: 'strategy.pauseSeconds', message: 'must be between 0 and 31536000' },
      { path: 'strategy.maxFailures', message: 'must be at least 0' },
    ]);
  });

  it('refuses a percentage over 100 or under 1', () => {
    expect(validateStrategy({ wavePercent: 101, pauseSeconds: 0, maxFailurePercent: 150 }).problems).toEqual([
      { path: 'strategy.wavePercent', message: 'must be between 1 and 100' },
      { path: 'strategy.maxFailurePercent', message: 'must be between 0 and 100' },
    ]);
    expect(paths({ wavePercent: 0, pauseSeconds: 0, maxFailures: 0 })).toEqual(['strategy.wavePercent']);
  });

  it('refuses a wave size of zero', () => {
    expect(paths({ waveSize: 0, pauseSeconds: 0, maxFailures: 0 })).toEqual(['strategy.waveSize']);
  });

  it('refuses non-integers and non-numbers', () => {
    const result = validateStrategy({ waveSize: 2.5, pauseSeconds: '60', maxFailurePercent: Number.NaN });

    expect(result.problems).toEqual([
      { path: 'strategy.waveSize', message: 'must be an integer' },
      { path: 'strategy.pauseSeconds', message: 'must be an integer' },
      { path: 'strategy.maxFailurePercent', message: 'must be an integer' },
    ]);
  });

  it('requires pauseSeconds', () => {
    expect(validateStrategy({ waveSize: 1, maxFailures: 0 }).problems).toEqual([
      { path: 'strategy.pauseSeconds', message: 'is required' },
    ]);
  });

  it('refuses unknown fields and a strategy that is not an object', () => {
    expect(paths({ waveSize: 1, pauseSeconds: 0, maxFailures: 0, batch: 3 })).toEqual(['strategy.batch']);
    expect(paths(null)).toEqual(['strategy']);
    expect(paths([1])).toEqual(['strategy']);
    expect(paths('fast')).toEqual(['strategy']);
  });
});

describe('a release to 50 installs in waves of 10', () => {
  const installIds = ids(50);
  const byCount: ReleaseStrategy = { waveSize: 10, pauseSeconds: 30, maxFailures: 2 };
  const byPercent: ReleaseStrategy = { waveSize: 10, pauseSeconds: 30, maxFailurePercent: 10 };
  const secondWave = installIds.slice(10, 20);
  const threeFailuresInWaveTwo = new Set([secondWave[1], secondWave[4], secondWave[8]]);

  it('stops after wave 2 when 3 installs fail there and at most 2 failures are tolerated', () => {
    const { outcomes, decisions, reasons } = runRelease(installIds, byCount, threeFailuresInWaveTwo);

    expect(decisions.map((decision) => decision.action)).toEqual(['next-wave', 'stop']);
    const reason = '3 of 20 installs failed, more than the 2 tolerated; waves 3-5 (30 installs) not started';
    expect(decisions[1]).toEqual({ action: 'stop', reason, failures: 3, attempted: 20 });
    expect(installIds.slice(20).map((id) => [outcomes.get(id), reasons.get(id)])).toEqual(
      installIds.slice(20).map(() => ['skipped', reason]),
    );
    expect(installIds.slice(0, 10).every((id) => outcomes.get(id) === 'succeeded')).toBe(true);
    expect(secondWave.map((id) => outcomes.get(id) === 'failed')).toEqual(
      secondWave.map((id) => threeFailuresInWaveTwo.has(id)),
    );
    expect([count(outcomes, 'succeeded'), count(outcomes, 'failed'), count(outcomes, 'skipped')]).toEqual([
      17, 3, 30,
    ]);
  });

  it('stops after wave 2 the same way when at most 10% of attempted installs may fail', () => {
    const { outcomes, decisions, reasons } = runRelease(installIds, byPercent, threeFailuresInWaveTwo);

    const reason =
      '3 of 20 installs failed (15%), more than the 10% tolerated; waves 3-5 (30 installs) not started';
    expect(decisions.map((decision) => decision.action)).toEqual(['next-wave', 'stop']);
    expect(decisions[1]).toEqual({ action: 'stop', reason, failures: 3, attempted: 20 });
    expect(new Set(installIds.slice(20).map((id) => reasons.get(id)))).toEqual(new Set([reason]));
    expect([count(outcomes, 'succeeded'), count(outcomes, 'failed'), count(outcomes, 'skipped')]).toEqual([
      17, 3, 30,
    ]);
  });

  it('runs to done when 1 install fails, within the tolerance', () => {
    const oneFailure = new Set([secondWave[3]]);

    for (const strategy of [byCount, byPercent]) {
      const { outcomes, decisions } = runRelease(installIds, strategy, oneFailure);

      expect(decisions.map((decision) => decision.action)).toEqual([
        'next-wave',
        'next-wave',
        'next-wave',
        'next-wave',
        'done',
      ]);
      expect(decisions[4]).toMatchObject({ failures: 1, attempted: 50 });
      expect([count(outcomes, 'succeeded'), count(outcomes, 'failed'), count(outcomes, 'skipped')]).toEqual([
        49, 1, 0,
      ]);
    }
    expect(runRelease(installIds, byCount, oneFailure).decisions[4].reason).toBe(
      'all 5 waves ran; 1 of 50 installs failed, within the 2 tolerated',
    );
    expect(runRelease(installIds, byPercent, oneFailure).decisions[1].reason).toBe(
      'wave 2 of 5 ran; 1 of 20 installs failed (5%), within the 10% tolerated; starting wave 3',
    );
  });
});

describe('decideAfterWave', () => {
  const waves = [['a', 'b'], ['c', 'd'], ['e']];

  it('stops at the first failure when no failures are tolerated, naming the one wave left', () => {
    const outcomes = new Map<string, InstallOutcome>([
      ['a', 'succeeded'],
      ['b', 'succeeded'],
      ['c', 'failed'],
      ['d', 'succeeded'],
    ]);

    expect(decideAfterWave(waves, 2, outcomes, { waveSize: 2, pauseSeconds: 0, maxFailures: 0 })).toEqual({
      action: 'stop',
      reason: '1 of 4 installs failed, and none are tolerated; wave 3 (1 install) not started',
      failures: 1,
      attempted: 4,
    });
  });

  it('stops rather than reports done when the last wave breaks the tolerance', () => {
    const outcomes = new Map<string, InstallOutcome>([
      ['a', 'succeeded'],
      ['b', 'succeeded'],
      ['c', 'succeeded'],
      ['d', 'succeeded'],
      ['e', 'failed'],
    ]);

    const decision = decideAfterWave(waves, 3, outcomes, { waveSize: 2, pauseSeconds: 0, maxFailures: 0 });

    expect(decision.action).toBe('stop');
    expect(decision.reason).toBe(
      '1 of 5 installs failed, and none are tolerated; no waves were left to start',
    );
    expect(skippedInstalls(waves, 3)).toEqual([]);
  });

  it('counts only succeeded and failed installs as attempted', () => {
    const outcomes = new Map<string, InstallOutcome>([
      ['a', 'failed'],
      ['b', 'cancelled'],
    ]);

    const decision = decideAfterWave(waves, 1, outcomes, {
      waveSize: 2,
      pauseSeconds: 0,
      maxFailurePercent: 100,
    });

    expect(decision).toMatchObject({ action: 'next-wave', failures: 1, attempted: 1 });
  });

  it('starts the first wave before any ran', () => {
    const decision = decideAfterWave(waves, 0, new Map(), {
      waveSize: 2,
      pauseSeconds: 0,
      maxFailurePercent: 0,
    });

    expect(decision).toEqual({
      action: 'next-wave',
      reason: 'no wave ran yet; 0 of 0 installs failed (0%), within the 0% tolerated; starting wave 1',
      failures: 0,
      attempted: 0,
    });
  });

  it('refuses a wave count outside the plan', () => {
    const strategy = { waveSize: 2, pauseSeconds: 0, maxFailures: 0 };

    expect(() => decideAfterWave(waves, 4, new Map(), strategy)).toThrow('wavesRun must be between 0 and 3');
    expect(() => decideAfterWave(waves, -1, new Map(), strategy)).toThrow(RangeError);
  });
});

describe('skippedInstalls', () => {
  it('lists the installs of the waves not started, in order', () => {
    expect(skippedInstalls([['a'], ['b', 'c'], ['d']], 1)).toEqual(['b', 'c', 'd']);
    expect(skippedInstalls([['a'], ['b']], 0)).toEqual(['a', 'b']);
  });
});
