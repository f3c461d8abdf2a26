/**
 * One deploy at a time per install. A deploy (a release, or one workflow execution) holds the
 * install's lock item while it runs; the lock expires by itself (`expiresAt`, the table's TTL
 * attribute) so a deploy that died cannot block the install for ever. Acquiring again with the same
 * owner renews the lock, so a retried step does not lock itself out.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError } from './errors';
import type { StateStore } from './state-store';
import { keys } from './store';

export interface HeldLock {
  readonly installId: string;
  /** The release or workflow execution that holds it. */
  readonly owner: string;
  readonly acquiredAt: string;
  /** Epoch seconds after which anyone may take the lock over. */
  readonly expiresAt: number;
}

/** How many times acquire re-reads a lock that was released or expired while it looked. */
const ACQUIRE_ATTEMPTS = 3;

export class InstallLock {
  constructor(private readonly store: StateStore) {}

  /**
   * Takes the install's lock for `owner` for `ttlSeconds`: when nobody holds it, when it expired, or
   * when `owner` already holds it (renewed). Throws ConflictError `InstallLocked` naming the holder.
   */
  async acquire(installId: string, owner: string, ttlSeconds: number): Promise<HeldLock> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new RangeError(`ttlSeconds must be a positive integer, got ${ttlSeconds}`);
    }
    for (let attempt = 1; ; attempt++) {
      const now = this.store.now();
      const nowSeconds = Math.floor(now.getTime() / 1000);
      const lock: HeldLock = {
        installId,
        owner,
        acquiredAt: now.toISOString(),
        expiresAt: nowSeconds + ttlSeconds,
      };
      try {
        await this.store.client.send(
          new PutCommand({
            TableName: this.store.table,
            Item: { ...keys.installLock(installId), ...lock },
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':now': nowSeconds, ':owner': owner },
          }),
        );
        return lock;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
      const holder = await this.holder(installId);
      // Held by another and not expired: refuse. Otherwise it changed under us: try again.
      if ((holder && holder.expiresAt >= nowSeconds) || attempt >= ACQUIRE_ATTEMPTS) {
        const by = holder ? `${holder.owner} since ${holder.acquiredAt}` : 'another deploy';
        const until = holder
          ? ` (the lock expires at ${new Date(holder.expiresAt * 1000).toISOString()})`
          : '';
        throw new ConflictError(
          'InstallLocked',
          `install ${installId} is being deployed by ${by}; retry once it finishes${until}`,
        );
      }
    }
  }

  /** Releases the lock if `owner` holds it; returns false (and changes nothing) if it does not. */
  async release(installId: string, owner: string): Promise<boolean> {
    try {
      await this.store.client.send(
        new DeleteCommand({
          TableName: this.store.table,
          Key: keys.installLock(installId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** The lock as stored, expired or not; undefined when nobody holds it. */
  async holder(installId: string): Promise<HeldLock | undefined> {
    const item = await this.store.get(keys.installLock(installId));
    if (!item) return undefined;
    return {
      installId,
      owner: item.owner as string,
      acquiredAt: item.acquiredAt as string,
      expiresAt: item.expiresAt as number,
    };
  }
}
