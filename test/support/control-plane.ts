import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { BuildStarter } from '../../lambda/build/starter';
import { Builds } from '../../lambda/domain/builds';
import { ControlPlane } from '../../lambda/domain/control-plane';
import { Deployments } from '../../lambda/domain/deployments';
import { Releases } from '../../lambda/domain/releases';
import { LocalSealer } from '../../lambda/domain/secrets';
import { StateStore } from '../../lambda/domain/state-store';
import { documentClient } from '../../lambda/shared/dynamo';
import { synthesizeAccessTemplate } from '../../lib/access-template';
import { ensureStateTable, type LocalDynamoDb } from '../../local/dynamodb';
import { LocalInstallAccess } from '../../local/install-access';

let tables = 0;

/** Remembers which builds were started; can be told to fail, as a workflow service that refuses would. */
export class RecordingStarter implements BuildStarter {
  readonly started: string[] = [];
  failWith?: Error;

  async start(buildId: string): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.started.push(buildId);
  }
}

/** Remembers which releases were started, as a workflow service would start them. */
export class RecordingReleaseStarter {
  readonly started: string[] = [];
  failWith?: Error;

  async start(releaseId: string): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.started.push(releaseId);
  }
}

/** Remembers which teardowns were started. */
export class RecordingTeardownStarter {
  readonly started: { installId: string; teardownId: string }[] = [];

  async start(installId: string, teardownId: string): Promise<void> {
    this.started.push({ installId, teardownId });
  }
}

/** The domain services on their own fresh table in the given DynamoDB Local. */
export async function freshDomain(dynamo: LocalDynamoDb) {
  const table = `state-${process.pid}-${++tables}`;
  await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), table);
  const client = documentClient(dynamo.clientConfig);
  const controlPlane = new ControlPlane({ client, table, sealer: new LocalSealer(randomBytes(32)) });
  const builds = new Builds(new StateStore({ client, table }));
  return {
    controlPlane,
    builds,
    table,
    client,
    buildStarter: new RecordingStarter(),
    installAccess: new LocalInstallAccess('127.0.0.1:9'),
    deployments: new Deployments(new StateStore({ client, table })),
    releases: new Releases(new StateStore({ client, table })),
    releaseStarter: new RecordingReleaseStarter(),
    teardownStarter: new RecordingTeardownStarter(),
    accessTemplate: {
      template: synthesizeAccessTemplate({ tenant: 'acme' }),
      trustedRoleArns: ['arn:aws:iam::123456789012:role/acme-sync'],
    },
  };
}
