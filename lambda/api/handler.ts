import { KMSClient } from '@aws-sdk/client-kms';
import { ControlPlane } from '../domain/control-plane';
import { KmsSealer } from '../domain/secrets';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { type ApiHandler, createApiHandler } from './app';

const controlPlane = new ControlPlane({
  client: documentClient(),
  table: requireEnv('STATE_TABLE'),
  sealer: new KmsSealer(new KMSClient({}), requireEnv('TENANT_KEY_ARN')),
});

/** Lambda entry point for every /v1 route; dependencies come from the function's environment. */
export const handler: ApiHandler = createApiHandler({ tenant: requireEnv('FERRY_TENANT'), controlPlane });
