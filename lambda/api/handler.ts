import { KMSClient } from '@aws-sdk/client-kms';
import { SFNClient } from '@aws-sdk/client-sfn';
import { STSClient } from '@aws-sdk/client-sts';
import { StepFunctionsBuildStarter } from '../build/starter';
import { StepFunctionsTeardownStarter } from '../deploy/teardown-starter';
import { Builds } from '../domain/builds';
import { ControlPlane } from '../domain/control-plane';
import { Deployments } from '../domain/deployments';
import { Releases } from '../domain/releases';
import { KmsSealer } from '../domain/secrets';
import { StateStore } from '../domain/state-store';
import { StepFunctionsReleaseStarter } from '../release/aws';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { AwsInstallAccess } from '../sync/access';
import { type ApiHandler, createApiHandler } from './app';

const client = documentClient();
const table = requireEnv('STATE_TABLE');
const sfn = new SFNClient({});

/** Lambda entry point for every /v1 route; dependencies come from the function's environment. */
export const handler: ApiHandler = createApiHandler({
  tenant: requireEnv('FERRY_TENANT'),
  controlPlane: new ControlPlane({
    client,
    table,
    sealer: new KmsSealer(new KMSClient({}), requireEnv('TENANT_KEY_ARN')),
  }),
  builds: new Builds(new StateStore({ client, table })),
  deployments: new Deployments(new StateStore({ client, table })),
  releases: new Releases(new StateStore({ client, table })),
  buildStarter: new StepFunctionsBuildStarter(sfn, requireEnv('BUILD_STATE_MACHINE_ARN')),
  releaseStarter: new StepFunctionsReleaseStarter(sfn, requireEnv('RELEASE_STATE_MACHINE_ARN')),
  teardownStarter: new StepFunctionsTeardownStarter(sfn, requireEnv('TEARDOWN_STATE_MACHINE_ARN')),
  installAccess: new AwsInstallAccess({ sts: new STSClient({}), tenant: requireEnv('FERRY_TENANT') }),
  accessTemplate: {
    template: JSON.parse(FERRY_ACCESS_TEMPLATE) as Record<string, unknown>,
    trustedRoleArns: requireEnv('INSTALL_ACCESS_ROLE_ARNS').split(','),
  },
});
