import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { checkStateTable } from '../../lambda/self-check/self-check';
import { documentClient } from '../../lambda/shared/dynamo';
import { ensureStateTable, type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { type LocalRegistry, startRegistry } from '../../local/registry';
import { runWorkflow } from '../../local/stepfunctions';

const run = promisify(execFile);

describe('DynamoDB stand-in', () => {
  let dynamo: LocalDynamoDb;
  beforeAll(async () => {
    dynamo = await startDynamoDb();
  });
  afterAll(async () => {
    await dynamo.stop();
  });

  it('creates the state table with the deployed key schema and writes, reads and transacts', async () => {
    const client = documentClient(dynamo.clientConfig);
    await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), 'state');
    await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), 'state'); // idempotent

    await client.send(new PutCommand({ TableName: 'state', Item: { pk: 'A', sk: 'B', value: 1 } }));
    const read = await client.send(new GetCommand({ TableName: 'state', Key: { pk: 'A', sk: 'B' } }));
    expect(read.Item).toEqual({ pk: 'A', sk: 'B', value: 1 });

    // Transactions with conditions: the reason DynamoDB Local was chosen over dynalite.
    const conflicting = client.send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: 'state', Item: { pk: 'C', sk: 'D' } } },
          {
            Put: {
              TableName: 'state',
              Item: { pk: 'A', sk: 'B' },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
        ],
      }),
    );
    await expect(conflicting).rejects.toThrow(/ConditionalCheckFailed/);
    const notWritten = await client.send(new GetCommand({ TableName: 'state', Key: { pk: 'C', sk: 'D' } }));
    expect(notWritten.Item).toBeUndefined();
    await client.send(new DeleteCommand({ TableName: 'state', Key: { pk: 'A', sk: 'B' } }));
  });

  it('keeps data in a data directory across a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ferry-ddb-'));
    try {
      const first = await startDynamoDb({ dataDir });
      await ensureStateTable(new DynamoDBClient(first.clientConfig), 'state');
      await documentClient(first.clientConfig).send(
        new PutCommand({ TableName: 'state', Item: { pk: 'kept', sk: 'x' } }),
      );
      await first.stop();
      const second = await startDynamoDb({ dataDir });
      const read = await documentClient(second.clientConfig).send(
        new GetCommand({ TableName: 'state', Key: { pk: 'kept', sk: 'x' } }),
      );
      await second.stop();
      expect(read.Item).toEqual({ pk: 'kept', sk: 'x' });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs the self-check workflow with its Task mapped to the Lambda handler code', async () => {
    const client = documentClient(dynamo.clientConfig);
    await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), 'state');
    const result = await runWorkflow(
      'self-check',
      {},
      {
        executionName: 'run-1',
        tasks: {
          CheckStateTable: (input: { runId: string }) => checkStateTable(client, 'state', input.runId),
        },
      },
    );
    expect(result.status).toBe('SUCCEEDED');
    expect(result.statesEntered).toEqual(['CheckStateTable', 'SelfCheckPassed']);
    expect(result.output).toMatchObject({
      stateTable: { check: 'state-table', table: 'state', probe: 'SELFCHECK#run-1', wroteAndRead: true },
    });
    const probe = await client.send(
      new GetCommand({ TableName: 'state', Key: { pk: 'SELFCHECK#run-1', sk: 'PROBE' } }),
    );
    expect(probe.Item).toBeUndefined();
  });

  it('records a failed self-check with the cause when the table is missing', async () => {
    const client = documentClient(dynamo.clientConfig);
    const result = await runWorkflow(
      'self-check',
      {},
      {
        tasks: {
          CheckStateTable: (input: { runId: string }) =>
            checkStateTable(client, 'no-such-table', input.runId),
        },
      },
    );
    expect(result.status).toBe('FAILED');
    expect(result.statesEntered).toEqual(['CheckStateTable', 'SelfCheckFailed']);
    expect(result.error).toBe('SelfCheckFailed');
    expect(result.cause).toMatch(/non-existent table|ResourceNotFound/i);
  });
});

describe('registry stand-in', () => {
  let registry: LocalRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry.stop();
  });

  it('accepts a push and serves it back by digest', async () => {
    const layer = Buffer.from('ferry layer\n');
    const config = Buffer.from(
      JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const digestOf = async (data: Buffer) =>
      `sha256:${(await import('node:crypto')).createHash('sha256').update(data).digest('hex')}`;
    for (const blob of [layer, config]) {
      const start = await fetch(`${registry.url}/v2/ferry-acme/demo/blobs/uploads/`, { method: 'POST' });
      expect(start.status).toBe(202);
      const location = new URL(start.headers.get('location')!, registry.url);
      location.searchParams.set('digest', await digestOf(blob));
      const put = await fetch(location, {
        method: 'PUT',
        body: blob,
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(put.status).toBe(201);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: await digestOf(config),
          size: config.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: await digestOf(layer),
            size: layer.length,
          },
        ],
      }),
    );
    const put = await fetch(`${registry.url}/v2/ferry-acme/demo/manifests/v1`, {
      method: 'PUT',
      body: manifest,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(await digestOf(manifest));

    const pulled = await fetch(`${registry.url}/v2/ferry-acme/demo/manifests/${await digestOf(manifest)}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(Buffer.from(await pulled.arrayBuffer())).toEqual(manifest);
    const blob = await fetch(`${registry.url}/v2/ferry-acme/demo/blobs/${await digestOf(layer)}`);
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(layer);
  });

  it('is readable by skopeo, where skopeo is installed', async () => {
    const skopeo = await run('skopeo', ['--version']).catch(() => undefined);
    if (!skopeo) return; // .ci/run installs skopeo; a developer machine may not have it
    const { stdout } = await run('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/ferry-acme/demo:v1`,
    ]);
    expect(JSON.parse(stdout).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('stops and frees its port', async () => {
    const other = await startRegistry();
    await other.stop();
    await expect(fetch(`${other.url}/v2/`)).rejects.toThrow();
  });
});
