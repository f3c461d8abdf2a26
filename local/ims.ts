/**
 * Local mode: the IMS on loopback. The same API handler Lambda runs, behind the HTTP adapter, on
 * DynamoDB Local keeping its data under a data directory so a restart loses nothing.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createApiHandler } from '../lambda/api/app';
import { ControlPlane } from '../lambda/domain/control-plane';
import { LocalSealer, loadOrCreateLocalKey } from '../lambda/domain/secrets';
import { documentClient } from '../lambda/shared/dynamo';
import { ensureStateTable, type LocalDynamoDb, startDynamoDb } from './dynamodb';
import { type LocalHttpServer, serveProxyHandler } from './http-adapter';

export const LOCAL_STATE_TABLE = 'ferry-local-state';

export interface LocalImsOptions {
  /** Where the IMS keeps its data. */
  readonly dataDir: string;
  /** The loopback port the API listens on; 0 for any free port. */
  readonly port: number;
  /** @default 'local' */
  readonly tenant?: string;
}

export interface LocalIms {
  readonly url: string;
  readonly dataDir: string;
  readonly dynamoDbEndpoint: string;
  stop(): Promise<void>;
}

export async function startLocalIms(options: LocalImsOptions): Promise<LocalIms> {
  mkdirSync(options.dataDir, { recursive: true });
  const started: { stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const part of started.reverse()) await part.stop();
  };
  try {
    const dynamo: LocalDynamoDb = await startDynamoDb({ dataDir: join(options.dataDir, 'dynamodb') });
    started.push(dynamo);
    const raw = new DynamoDBClient(dynamo.clientConfig);
    await ensureStateTable(raw, LOCAL_STATE_TABLE);
    const controlPlane = new ControlPlane({
      client: documentClient(dynamo.clientConfig),
      table: LOCAL_STATE_TABLE,
      sealer: new LocalSealer(loadOrCreateLocalKey(options.dataDir)),
    });
    const handler = createApiHandler({ tenant: options.tenant ?? 'local', controlPlane });
    const server: LocalHttpServer = await serveProxyHandler(handler, options.port);
    started.push(server);
    started.push({ stop: async () => raw.destroy() });
    return { url: server.url, dataDir: options.dataDir, dynamoDbEndpoint: dynamo.endpoint, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
