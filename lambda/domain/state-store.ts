/**
 * The state table as the domain uses it: consistent reads, paged queries, transactions, history
 * events and Idempotency-Key records. Shared by every domain service (control plane, builds).
 */
import { createHash } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { monotonicFactory } from 'ulid';
import { ConflictError, IdempotencyKeyReusedError } from './errors';
import {
  decodeToken,
  encodeToken,
  gsi1,
  type Key,
  keys,
  PAGE_LIMIT_DEFAULT,
  type Page,
  type PageRequest,
} from './store';

export interface HistoryEvent {
  readonly id: string;
  readonly appId: string;
  readonly installId?: string;
  readonly type: string;
  readonly at: string;
  /** Who made the change (the caller's principal, or the workflow). */
  readonly actor: string;
  readonly message: string;
  /** What changed; sensitive values appear as "(sensitive)". */
  readonly data: Record<string, unknown>;
}

/** What a create answers: the record, and whether it was replayed for a repeated Idempotency-Key. */
export interface Created<T> {
  readonly value: T;
  readonly created: boolean;
}

export interface Idempotency {
  /** The caller's Idempotency-Key. */
  readonly key: string;
  /** What the key is scoped to (the route), so one key cannot answer two kinds of request. */
  readonly scope: string;
  /** The request, as given: a repeat with a different request is refused. */
  readonly request: unknown;
}

/** How long an Idempotency-Key is remembered. */

/** How long an Idempotency-Key is remembered. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60;

export type Item = Record<string, unknown>;
export type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']
>[number];

export interface StateStoreOptions {
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  readonly now?: () => Date;
}

export class StateStore {
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  readonly now: () => Date;
  private readonly ulid = monotonicFactory();

  constructor(options: StateStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.now = options.now ?? (() => new Date());
  }

  async idempotent<T>(
    idempotency: Idempotency | undefined,
    load: (id: string) => Promise<T>,
    create: (remember: (id: string) => TransactItem[]) => Promise<T>,
  ): Promise<Created<T>> {
    if (!idempotency) return { value: await create(() => []), created: true };
    const key = keys.idempotency(idempotency.scope, idempotency.key);
    const requestHash = hashOf(idempotency.request);
    const replay = async (): Promise<Created<T> | undefined> => {
      const seen = await this.get(key);
      if (!seen) return undefined;
      if (seen.requestHash !== requestHash) {
        throw new IdempotencyKeyReusedError(
          `Idempotency-Key '${idempotency.key}' was already used for a different request`,
          [{ path: 'header.idempotency-key', message: 'use a new key for a new request' }],
        );
      }
      return { value: await load(seen.resourceId as string), created: false };
    };
    const earlier = await replay();
    if (earlier) return earlier;
    const expiresAt = Math.floor(this.now().getTime() / 1000) + IDEMPOTENCY_TTL_SECONDS;
    try {
      const value = await create((id) => [
        this.put({ ...key, requestHash, resourceId: id, expiresAt }, 'attribute_not_exists(pk)'),
      ]);
      return { value, created: true };
    } catch (error) {
      // A concurrent request with the same key may have won the race (its write then fails ours,
      // possibly on another condition such as the name): answer as it did.
      if (error instanceof TransactionCanceledException || error instanceof ConflictError) {
        const raced = await replay();
        if (raced) return raced;
      }
      throw error;
    }
  }

  async get(key: Key): Promise<Item | undefined> {
    const result = await this.client.send(
      new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }),
    );
    return result.Item;
  }

  /**
   * One page of a partition, on the table (`pk`, optionally `begins_with(sk, skPrefix)`) or on
   * gsi1 (`gsi1pk`). The page token is checked to belong to this very partition.
   */
  async queryPartition<T>(
    query: {
      index?: 'gsi1';
      partition: string;
      skPrefix?: string;
      newestFirst?: boolean;
      consistent?: boolean;
    },
    page: PageRequest,
    map: (item: Item) => T,
  ): Promise<Page<T>> {
    const onIndex = query.index === 'gsi1';
    const partitionAttribute = onIndex ? 'gsi1pk' : 'pk';
    const keyAttributes = onIndex ? ['pk', 'sk', 'gsi1pk', 'gsi1sk'] : ['pk', 'sk'];
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.table,
        ...(onIndex && { IndexName: 'gsi1' }),
        KeyConditionExpression: `${partitionAttribute} = :p${query.skPrefix ? ' AND begins_with(sk, :s)' : ''}`,
        ExpressionAttributeValues: { ':p': query.partition, ...(query.skPrefix && { ':s': query.skPrefix }) },
        ScanIndexForward: !query.newestFirst,
        ...(query.consistent && { ConsistentRead: true }),
        Limit: page.limit ?? PAGE_LIMIT_DEFAULT,
        ExclusiveStartKey: decodeToken(page.nextToken, keyAttributes, partitionAttribute, query.partition),
      }),
    );
    const nextToken = encodeToken(result.LastEvaluatedKey);
    return { items: (result.Items ?? []).map(map), ...(nextToken && { nextToken }) };
  }

  async transact(items: TransactItem[]): Promise<void> {
    await this.client.send(new TransactWriteCommand({ TransactItems: items }));
  }

  put(item: Item, condition?: string, values?: Record<string, unknown>): TransactItem {
    return {
      Put: {
        TableName: this.table,
        Item: item,
        ...(condition && { ConditionExpression: condition }),
        ...(values && { ExpressionAttributeValues: values }),
      },
    };
  }

  eventPut(event: Omit<HistoryEvent, 'id' | 'at'>): TransactItem {
    const id = this.ulid(this.now().getTime());
    const record: HistoryEvent = { id, at: this.timestamp(), ...event };
    return this.put(
      {
        ...keys.event(event.appId, id),
        ...(event.installId && { gsi1pk: gsi1.eventsOfInstall(event.installId), gsi1sk: id }),
        ...record,
      },
      'attribute_not_exists(pk)',
    );
  }

  /** Appends one history event on its own (a change already recorded elsewhere, a workflow step). */
  async appendEvent(event: Omit<HistoryEvent, 'id' | 'at'>): Promise<void> {
    await this.transact([this.eventPut(event)]);
  }

  newId(prefix: string): string {
    return `${prefix}_${this.ulid(this.now().getTime()).toLowerCase()}`;
  }

  timestamp(): string {
    return this.now().toISOString();
  }
}

export function conditionFailedAt(error: unknown, index: number): boolean {
  return (
    error instanceof TransactionCanceledException &&
    error.CancellationReasons?.[index]?.Code === 'ConditionalCheckFailed'
  );
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Item)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
