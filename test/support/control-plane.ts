import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ControlPlane } from '../../lambda/domain/control-plane';
import { LocalSealer } from '../../lambda/domain/secrets';
import { documentClient } from '../../lambda/shared/dynamo';
import { ensureStateTable, type LocalDynamoDb } from '../../local/dynamodb';

let tables = 0;

/** A control plane on its own fresh table in the given DynamoDB Local. */
export async function freshControlPlane(
  dynamo: LocalDynamoDb,
): Promise<{ controlPlane: ControlPlane; table: string }> {
  const table = `state-${process.pid}-${++tables}`;
  await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), table);
  const controlPlane = new ControlPlane({
    client: documentClient(dynamo.clientConfig),
    table,
    sealer: new LocalSealer(randomBytes(32)),
  });
  return { controlPlane, table };
}
