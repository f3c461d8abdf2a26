/**
 * The self-check's domain: proves a caller can write, read and delete in the state table, with the
 * same conditional writes the IMS uses everywhere. Knows nothing of Lambda.
 */
import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { STATE_TABLE_KEYS, STATE_TABLE_TTL_ATTRIBUTE } from '../shared/state-schema';

export interface StateTableCheck {
  readonly check: 'state-table';
  readonly table: string;
  readonly probe: string;
  readonly wroteAndRead: true;
  readonly elapsedMs: number;
}

export class SelfCheckFailed extends Error {
  override readonly name = 'SelfCheckFailed';
}

/** Writes a probe item (it expires within an hour even if the delete fails), reads it back, deletes it. */
export async function checkStateTable(
  client: DynamoDBDocumentClient,
  table: string,
  runId: string,
  now: () => number = Date.now,
): Promise<StateTableCheck> {
  const started = now();
  const key = { [STATE_TABLE_KEYS.partitionKey]: `SELFCHECK#${runId}`, [STATE_TABLE_KEYS.sortKey]: 'PROBE' };
  const token = `${runId}:${started}`;
  await client.send(
    new PutCommand({
      TableName: table,
      Item: { ...key, token, [STATE_TABLE_TTL_ATTRIBUTE]: Math.floor(started / 1000) + 3600 },
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': STATE_TABLE_KEYS.partitionKey },
    }),
  );
  const read = await client.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
  if (read.Item?.token !== token) {
    throw new SelfCheckFailed(
      `state table ${table}: probe ${key.pk} read back ${JSON.stringify(read.Item?.token)}, wrote ${token}`,
    );
  }
  await client.send(new DeleteCommand({ TableName: table, Key: key }));
  return { check: 'state-table', table, probe: key.pk, wroteAndRead: true, elapsedMs: now() - started };
}
