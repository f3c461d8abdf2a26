/**
 * Releases: one app's builds deployed to many installs in waves. A release is recorded with every
 * install it reaches (one item each, sorted by wave) before its workflow starts; the workflow moves
 * installs pending -> deploying -> succeeded | failed (or skipped / cancelled when their wave never
 * starts) and keeps per-wave counters, so nothing the release knows lives in workflow state.
 *
 * Reports from installs race: each is one transaction on the install's item (only from
 * `deploying`, so a repeat counts once) and its wave's counter. The last report of a wave claims
 * the wave's task token exactly once (a conditional update) and wakes the workflow.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { planWaves, type ReleaseStrategy, waveSizeFor } from '../release/waves';
import { ConflictError, NotFoundError } from './errors';
import { type Created, conditionFailedAt, type Idempotency, type Item, type StateStore } from './state-store';
import { gsi1, keys, type Page, type PageRequest, releaseWavePrefix, withoutKeys } from './store';

export type ReleaseStatus =
  | 'running'
  | 'cancelling'
  | 'succeeded'
  | 'partially-succeeded'
  | 'stopped'
  | 'cancelled'
  | 'failed';

export const FINISHED_RELEASE_STATUSES: readonly ReleaseStatus[] = [
  'succeeded',
  'partially-succeeded',
  'stopped',
  'cancelled',
  'failed',
];

export type ReleaseInstallStatus = 'pending' | 'deploying' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export const RELEASE_INSTALL_STATUSES: readonly ReleaseInstallStatus[] = [
  'pending',
  'deploying',
  'succeeded',
  'failed',
  'cancelled',
  'skipped',
];

export type ReleaseCounts = Record<ReleaseInstallStatus, number>;

/** The most installs one release reaches (the release workflow is built and measured for this). */
export const MAX_RELEASE_INSTALLS = 10_000;

export interface Release {
  readonly id: string;
  readonly appId: string;
  readonly status: ReleaseStatus;
  /** The build each component deploys, pinned when the release was created. */
  readonly builds: Record<string, string>;
  readonly strategy: ReleaseStrategy;
  /** The release whose failed installs this one retries. */
  readonly retryOf?: string;
  readonly installCount: number;
  readonly waveSize: number;
  readonly waveCount: number;
  /** Waves that ran to their end and were counted. */
  readonly wavesRun: number;
  /** The wave running now or last started; 0 before the first. */
  readonly currentWave: number;
  /** Installs by status, the running wave's reports included. */
  readonly counts: ReleaseCounts;
  /** Why the release is where it is: the last decision, in words. */
  readonly reason?: string;
  readonly cancelRequestedBy?: string;
  readonly actor: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
}

export interface ReleaseInstall {
  readonly installId: string;
  readonly wave: number;
  readonly status: ReleaseInstallStatus;
  /** Why it failed, was skipped or cancelled. */
  readonly cause?: string;
  readonly updatedAt: string;
}

export interface CreateReleaseInput {
  readonly appId: string;
  readonly builds: Record<string, string>;
  readonly strategy: ReleaseStrategy;
  /** In the order the waves take them. */
  readonly installIds: readonly string[];
  readonly retryOf?: string;
}

export interface WaveState {
  readonly wave: number;
  readonly size: number;
  /** Installs of the wave that have not reported. */
  readonly remaining: number;
  readonly succeeded: number;
  readonly failed: number;
}

const ACTOR = 'workflow:release';
/** Parallel BatchWriteItem calls while recording a release's installs. */
const WRITE_CONCURRENCY = 8;
/** Attempts at a report transaction that lost a race with another report of the same wave. */
const REPORT_ATTEMPTS = 8;

const zeroCounts = (): ReleaseCounts => ({
  pending: 0,
  deploying: 0,
  succeeded: 0,
  failed: 0,
  cancelled: 0,
  skipped: 0,
});

export class Releases {
  constructor(private readonly store: StateStore) {}

  /**
   * Records a release and every install it reaches, in waves; the caller validated the input. The
   * release item (with its history event and idempotency key) is written first, then the installs
   * in batches; if those cannot all be written the release is recorded as failed, saying why.
   */
  async create(
    input: CreateReleaseInput,
    actor: string,
    idempotency?: Idempotency,
  ): Promise<Created<Release>> {
    const waves = planWaves(input.installIds, input.strategy);
    return this.store.idempotent(
      idempotency,
      (id) => this.get(id),
      async (remember) => {
        const id = this.store.newId('rel');
        const at = this.store.timestamp();
        const release: Release = {
          id,
          appId: input.appId,
          status: 'running',
          builds: input.builds,
          strategy: input.strategy,
          ...(input.retryOf && { retryOf: input.retryOf }),
          installCount: input.installIds.length,
          waveSize: waveSizeFor(input.installIds.length, input.strategy),
          waveCount: waves.length,
          wavesRun: 0,
          currentWave: 0,
          counts: { ...zeroCounts(), pending: input.installIds.length },
          reason: 'created; the first wave starts when the release workflow does',
          actor,
          createdAt: at,
          updatedAt: at,
        };
        await this.store.transact([
          this.store.put(
            {
              ...keys.release(id),
              gsi1pk: gsi1.releasesOf(input.appId),
              gsi1sk: id,
              ...release,
            },
            'attribute_not_exists(pk)',
          ),
          this.store.eventPut({
            appId: input.appId,
            type: 'release.created',
            actor,
            message:
              `release ${id} created: ${input.installIds.length} installs in ${waves.length} ` +
              `${waves.length === 1 ? 'wave' : 'waves'}${input.retryOf ? `, retrying ${input.retryOf}` : ''}`,
            data: { releaseId: id, builds: input.builds, strategy: input.strategy },
          }),
          ...remember(id),
        ]);
        const items = waves.flatMap((wave, index) =>
          wave.map((installId) => ({
            ...keys.releaseInstall(id, index + 1, installId),
            installId,
            wave: index + 1,
            status: 'pending',
            updatedAt: at,
          })),
        );
        try {
          await this.batchPut(items);
        } catch (error) {
          return this.fail(id, `its installs could not all be recorded: ${(error as Error).message}`, actor);
        }
        return release;
      },
    );
  }

  async get(releaseId: string): Promise<Release> {
    const item = await this.store.get(keys.release(releaseId));
    if (!item) {
      throw new NotFoundError(`release ${releaseId} does not exist`, [
        { path: 'path.releaseId', message: 'no such release' },
      ]);
    }
    const release = toRelease(item);
    if (release.currentWave <= release.wavesRun) return release;
    // A wave is running: fold its counter in, so the counts are live.
    const wave = await this.waveState(releaseId, release.currentWave);
    if (!wave) return release;
    const counts = { ...release.counts };
    counts.pending -= wave.size;
    counts.deploying += wave.remaining;
    counts.succeeded += wave.succeeded;
    counts.failed += wave.failed;
    return { ...release, counts };
  }

  /** An app's releases, newest first. */
  async listForApp(appId: string, page: PageRequest): Promise<Page<Release>> {
    return this.store.queryPartition(
      { index: 'gsi1', partition: gsi1.releasesOf(appId), newestFirst: true },
      page,
      toRelease,
    );
  }

  /** A release's installs in wave order, a page at a time. */
  async listInstalls(releaseId: string, page: PageRequest): Promise<Page<ReleaseInstall>> {
    return this.store.queryPartition(
      { partition: keys.release(releaseId).pk, skPrefix: keys.releaseInstallPrefix },
      page,
      toReleaseInstall,
    );
  }

  /** Every install of one wave, read consistently. */
  async waveInstalls(releaseId: string, wave: number): Promise<ReleaseInstall[]> {
    return this.queryAll(
      'pk = :p AND begins_with(sk, :s)',
      { ':p': keys.release(releaseId).pk, ':s': releaseWavePrefix(wave) },
      toReleaseInstall,
    );
  }

  /** Every install of the release, in wave order. */
  async allInstalls(releaseId: string): Promise<ReleaseInstall[]> {
    return this.queryAll(
      'pk = :p AND begins_with(sk, :s)',
      { ':p': keys.release(releaseId).pk, ':s': keys.releaseInstallPrefix },
      toReleaseInstall,
    );
  }

  /** Every install in waves after `wave` (those never started when a release ends early). */
  async installsAfterWave(releaseId: string, wave: number): Promise<ReleaseInstall[]> {
    return this.queryAll(
      'pk = :p AND sk BETWEEN :from AND :to',
      { ':p': keys.release(releaseId).pk, ':from': releaseWavePrefix(wave + 1), ':to': 'WAVE#~' },
      toReleaseInstall,
    );
  }

  async waveState(releaseId: string, wave: number): Promise<(WaveState & { token?: string }) | undefined> {
    const item = await this.store.get(keys.releaseWave(releaseId, wave));
    if (!item) return undefined;
    return {
      wave,
      size: item.size as number,
      remaining: item.remaining as number,
      succeeded: item.succeeded as number,
      failed: item.failed as number,
      ...(typeof item.token === 'string' && { token: item.token }),
    };
  }

  /**
   * Opens a wave: its counter (every install still to report) and the token the workflow waits
   * with. Opening again (a retried step, which waits with a new token) keeps the counter and swaps
   * the token.
   */
  async openWave(releaseId: string, wave: number, size: number, token: string): Promise<void> {
    const at = this.store.timestamp();
    try {
      await this.store.transact([
        this.store.put(
          {
            ...keys.releaseWave(releaseId, wave),
            wave,
            size,
            remaining: size,
            succeeded: 0,
            failed: 0,
            token,
            notified: false,
            openedAt: at,
          },
          'attribute_not_exists(pk)',
        ),
        {
          Update: {
            TableName: this.store.table,
            Key: keys.release(releaseId),
            UpdateExpression: 'SET currentWave = :wave, updatedAt = :at, reason = :reason',
            ConditionExpression: 'wavesRun = :before',
            ExpressionAttributeValues: {
              ':wave': wave,
              ':before': wave - 1,
              ':at': at,
              ':reason': `wave ${wave} running`,
            },
          },
        },
      ]);
    } catch (error) {
      if (!conditionFailedAt(error, 0)) throw error;
      await this.store.client.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: keys.releaseWave(releaseId, wave),
          UpdateExpression: 'SET #token = :token',
          ExpressionAttributeNames: { '#token': 'token' },
          ExpressionAttributeValues: { ':token': token },
        }),
      );
    }
  }

  /** pending -> deploying. False when the install is past pending already (a retried step). */
  async markDeploying(releaseId: string, wave: number, installId: string): Promise<boolean> {
    return this.transition(releaseId, wave, installId, 'pending', 'deploying');
  }

  /**
   * Records how an install's deploy ended, once: a repeat finds it no longer deploying and changes
   * nothing. Returns the wave's token when this report was the wave's last: the caller wakes the
   * workflow with it.
   */
  async report(
    releaseId: string,
    wave: number,
    installId: string,
    outcome: 'succeeded' | 'failed',
    cause?: string,
  ): Promise<string | undefined> {
    const at = this.store.timestamp();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.transact([
          {
            Update: {
              TableName: this.store.table,
              Key: keys.releaseInstall(releaseId, wave, installId),
              UpdateExpression: `SET #status = :to, updatedAt = :at${cause ? ', #cause = :cause' : ' REMOVE #cause'}`,
              ConditionExpression: '#status = :from',
              ExpressionAttributeNames: { '#status': 'status', '#cause': 'cause' },
              ExpressionAttributeValues: {
                ':from': 'deploying',
                ':to': outcome,
                ':at': at,
                ...(cause && { ':cause': cause }),
              },
            },
          },
          {
            Update: {
              TableName: this.store.table,
              Key: keys.releaseWave(releaseId, wave),
              UpdateExpression: 'ADD remaining :minus, #outcome :one',
              ConditionExpression: 'attribute_exists(pk)',
              ExpressionAttributeNames: { '#outcome': outcome },
              ExpressionAttributeValues: { ':minus': -1, ':one': 1 },
            },
          },
        ]);
        break;
      } catch (error) {
        if (conditionFailedAt(error, 0)) break; // reported before: count it once
        if (conditionFailedAt(error, 1)) {
          throw new ConflictError(
            'WaveNotOpen',
            `install ${installId} reported for wave ${wave} of release ${releaseId}, which is not open`,
          );
        }
        const conflict =
          error instanceof TransactionCanceledException &&
          error.CancellationReasons?.some((reason) => reason.Code === 'TransactionConflict');
        if (!conflict || attempt >= REPORT_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** attempt));
      }
    }
    return this.claimWave(releaseId, wave);
  }

  /** The wave's token, to exactly one caller, once every install of the wave reported. */
  async claimWave(releaseId: string, wave: number): Promise<string | undefined> {
    try {
      const result = await this.store.client.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: keys.releaseWave(releaseId, wave),
          UpdateExpression: 'SET notified = :yes',
          ConditionExpression: 'remaining <= :zero AND notified = :no',
          ExpressionAttributeValues: { ':zero': 0, ':yes': true, ':no': false },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes?.token as string | undefined;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return undefined;
      throw error;
    }
  }

  /**
   * Counts a finished wave into the release (once: a repeat finds it counted) and returns the
   * release as it now stands.
   */
  async tallyWave(releaseId: string, wave: number): Promise<Release> {
    const installs = await this.waveInstalls(releaseId, wave);
    const counts = zeroCounts();
    for (const install of installs) counts[install.status] += 1;
    const unfinished = counts.pending + counts.deploying;
    if (unfinished > 0) {
      throw new ConflictError(
        'WaveNotFinished',
        `wave ${wave} of release ${releaseId} has ${unfinished} installs that have not finished`,
      );
    }
    const release = await this.get(releaseId);
    try {
      await this.store.client.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: keys.release(releaseId),
          UpdateExpression:
            'SET wavesRun = :wave, updatedAt = :at, #counts.pending = #counts.pending - :size ' +
            'ADD #counts.succeeded :succeeded, #counts.failed :failed, #counts.cancelled :cancelled, ' +
            '#counts.skipped :skipped',
          ConditionExpression: 'wavesRun = :before',
          ExpressionAttributeNames: { '#counts': 'counts' },
          ExpressionAttributeValues: {
            ':wave': wave,
            ':before': wave - 1,
            ':at': this.store.timestamp(),
            ':size': installs.length,
            ':succeeded': counts.succeeded,
            ':failed': counts.failed,
            ':cancelled': counts.cancelled,
            ':skipped': counts.skipped,
          },
        }),
      );
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      if (release.wavesRun < wave) throw error;
    }
    return this.get(releaseId);
  }

  /** Asks a running release to stop starting waves. Repeating it changes nothing. */
  async requestCancel(releaseId: string, actor: string): Promise<Release> {
    const release = await this.get(releaseId);
    if (release.status === 'cancelling') return release;
    if (release.status !== 'running') {
      throw new ConflictError('ReleaseFinished', `release ${releaseId} already ended: ${release.status}`, [
        { path: 'path.releaseId', message: `the release is ${release.status}; there is nothing to cancel` },
      ]);
    }
    const at = this.store.timestamp();
    try {
      await this.store.transact([
        {
          Update: {
            TableName: this.store.table,
            Key: keys.release(releaseId),
            UpdateExpression:
              'SET #status = :cancelling, cancelRequestedBy = :actor, updatedAt = :at, reason = :reason',
            ConditionExpression: '#status = :running',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: {
              ':cancelling': 'cancelling',
              ':running': 'running',
              ':actor': actor,
              ':at': at,
              ':reason': `cancel requested by ${actor}; deploys already started finish, no new wave starts`,
            },
          },
        },
        this.store.eventPut({
          appId: release.appId,
          type: 'release.cancel-requested',
          actor,
          message: `cancel of release ${releaseId} requested`,
          data: { releaseId },
        }),
      ]);
    } catch (error) {
      if (conditionFailedAt(error, 0)) return this.requestCancel(releaseId, actor);
      throw error;
    }
    return this.get(releaseId);
  }

  /**
   * Ends a release: installs in waves never started become `skipped` or `cancelled` with the
   * reason, the release takes its final status, and the app's history says how it ended.
   */
  async finish(
    releaseId: string,
    outcome: { status: Exclude<ReleaseStatus, 'running' | 'cancelling'>; reason: string },
    actor = ACTOR,
  ): Promise<Release> {
    const release = await this.get(releaseId);
    if (FINISHED_RELEASE_STATUSES.includes(release.status)) return release;
    const leftStatus: ReleaseInstallStatus = outcome.status === 'cancelled' ? 'cancelled' : 'skipped';
    const left = (await this.installsAfterWave(releaseId, release.wavesRun)).filter(
      (install) => install.status === 'pending',
    );
    const at = this.store.timestamp();
    const cause =
      leftStatus === 'cancelled'
        ? `not started: release cancelled by ${release.cancelRequestedBy ?? actor}`
        : `not started: ${outcome.reason}`;
    await this.batchPut(
      left.map((install) => ({
        ...keys.releaseInstall(releaseId, install.wave, install.installId),
        installId: install.installId,
        wave: install.wave,
        status: leftStatus,
        cause,
        updatedAt: at,
      })),
    );
    // Count from the installs themselves: what the release says is what its installs say.
    const counts = zeroCounts();
    for (const install of await this.allInstalls(releaseId)) counts[install.status] += 1;
    await this.store.transact([
      {
        Update: {
          TableName: this.store.table,
          Key: keys.release(releaseId),
          UpdateExpression:
            'SET #status = :status, reason = :reason, updatedAt = :at, finishedAt = :at, ' +
            '#counts = :counts, wavesRun = currentWave',
          ConditionExpression: '#status IN (:running, :cancelling)',
          ExpressionAttributeNames: { '#status': 'status', '#counts': 'counts' },
          ExpressionAttributeValues: {
            ':status': outcome.status,
            ':reason': outcome.reason,
            ':at': at,
            ':counts': counts,
            ':running': 'running',
            ':cancelling': 'cancelling',
          },
        },
      },
      this.store.eventPut({
        appId: release.appId,
        type: `release.${outcome.status}`,
        actor,
        message: `release ${releaseId} ${outcome.status}: ${outcome.reason}`,
        data: { releaseId, status: outcome.status, counts },
      }),
    ]);
    return this.get(releaseId);
  }

  /** The release could not go on (its workflow broke): recorded as failed with the cause. */
  async fail(releaseId: string, cause: string, actor = ACTOR): Promise<Release> {
    return this.finish(releaseId, { status: 'failed', reason: cause }, actor);
  }

  private async transition(
    releaseId: string,
    wave: number,
    installId: string,
    from: ReleaseInstallStatus,
    to: ReleaseInstallStatus,
  ): Promise<boolean> {
    try {
      await this.store.client.send(
        new UpdateCommand({
          TableName: this.store.table,
          Key: keys.releaseInstall(releaseId, wave, installId),
          UpdateExpression: 'SET #status = :to, updatedAt = :at',
          ConditionExpression: '#status = :from',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':from': from, ':to': to, ':at': this.store.timestamp() },
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  private async queryAll<T>(
    condition: string,
    values: Record<string, unknown>,
    map: (item: Item) => T,
  ): Promise<T[]> {
    const all: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.store.client.send(
        new QueryCommand({
          TableName: this.store.table,
          KeyConditionExpression: condition,
          ExpressionAttributeValues: values,
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) all.push(map(item));
      start = page.LastEvaluatedKey;
    } while (start);
    return all;
  }

  /** Puts items 25 to a call, several calls at once, retrying what DynamoDB leaves unprocessed. */
  private async batchPut(items: Item[]): Promise<void> {
    const batches: Item[][] = [];
    for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25));
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        let requests = batches[next++].map((Item) => ({ PutRequest: { Item } }));
        for (let attempt = 1; requests.length > 0; attempt++) {
          if (attempt > 8) throw new Error(`DynamoDB left ${requests.length} writes unprocessed 8 times`);
          const result = await this.store.client.send(
            new BatchWriteCommand({ RequestItems: { [this.store.table]: requests } }),
          );
          requests = (result.UnprocessedItems?.[this.store.table] ?? []) as typeof requests;
          if (requests.length > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, batches.length) }, worker));
  }
}

function toRelease(item: Item): Release {
  return withoutKeys(item) as unknown as Release;
}

function toReleaseInstall(item: Item): ReleaseInstall {
  const { installId, wave, status, cause, updatedAt } = item as unknown as ReleaseInstall;
  return { installId, wave, status, ...(cause !== undefined && { cause }), updatedAt };
}
