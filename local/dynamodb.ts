/**
 * The DynamoDB stand-in: AWS's DynamoDB Local (the jar shipped in amplify-dynamodb-simulator) on a
 * loopback port, run with the machine's Java. Chosen over dynalite because the store relies on
 * TransactWriteItems, condition expressions and TTL attributes exactly as DynamoDB has them.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  CreateTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { STATE_TABLE_INDEXES, STATE_TABLE_KEYS } from '../lambda/shared/state-schema';
import { freePort, startProcess, waitUntilReady } from './process';

export interface LocalDynamoDbOptions {
  /** Keep the data in this folder across restarts. @default in memory */
  readonly dataDir?: string;
  /** @default a free port */
  readonly port?: number;
}

export interface LocalDynamoDb {
  readonly endpoint: string;
  /** Client settings that reach this server (fixed region and dummy credentials; it accepts any). */
  readonly clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  stop(): Promise<void>;
}

function emulatorDir(): string {
  const pkg = require.resolve('amplify-dynamodb-simulator/package.json');
  const dir = join(dirname(pkg), 'emulator');
  if (!existsSync(join(dir, 'DynamoDBLocal.jar'))) {
    throw new Error(`DynamoDB Local is missing: expected ${dir}/DynamoDBLocal.jar (run npm ci)`);
  }
  return dir;
}

export async function startDynamoDb(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  const dir = emulatorDir();
  const port = options.port ?? (await freePort());
  const storage = options.dataDir ? ['-dbPath', options.dataDir] : ['-inMemory'];
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const server = startProcess(
    'java',
    [
      '-Xmx512m',
      `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
      '-jar',
      join(dir, 'DynamoDBLocal.jar'),
      '-sharedDb',
      '-port',
      String(port),
      ...storage,
    ],
    { cwd: dir },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const clientConfig = {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  };
  const probeClient = new DynamoDBClient({ ...clientConfig, maxAttempts: 1 });
  try {
    await waitUntilReady('DynamoDB Local', server, async () => {
      await probeClient.send(new ListTablesCommand({ Limit: 1 }));
      return true;
    });
  } finally {
    probeClient.destroy();
  }
  return { endpoint, clientConfig, stop: () => server.stop() };
}

/** Creates the state table with the key schema the CDK construct deploys, unless it exists. */
export async function ensureStateTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const existing = await client.send(new ListTablesCommand({}));
  if (existing.TableNames?.includes(tableName)) return;
  const attributes = new Set<string>([STATE_TABLE_KEYS.partitionKey, STATE_TABLE_KEYS.sortKey]);
  for (const index of STATE_TABLE_INDEXES) {
    attributes.add(index.partitionKey);
    attributes.add(index.sortKey);
  }
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
      KeySchema: [
        { AttributeName: STATE_TABLE_KEYS.partitionKey, KeyType: 'HASH' },
        { AttributeName: STATE_TABLE_KEYS.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: STATE_TABLE_INDEXES.map((index) => ({
        IndexName: index.indexName,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' },
          { AttributeName: index.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      })),
    }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName: tableName });
}
