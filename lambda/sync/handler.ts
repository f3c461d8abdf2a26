import { ECRClient } from '@aws-sdk/client-ecr';
import { STSClient } from '@aws-sdk/client-sts';
import { Builds } from '../domain/builds';
import { ControlPlane } from '../domain/control-plane';
import { StateStore } from '../domain/state-store';
import type { RegistryClient } from '../oci/client';
import type { BlobDescriptor } from '../oci/copy';
import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { AwsInstallAccess, ecrRegistry } from './access';
import { type CopiedBlob, type SyncInput, type SyncPlan, SyncSteps } from './steps';

const client = documentClient();
const table = requireEnv('STATE_TABLE');
const store = new StateStore({ client, table });
const ecr = new ECRClient({});
let tenantRegistry: RegistryClient | undefined;

const steps = new SyncSteps({
  // The sync step reads installs only; it is given no sealer.
  controlPlane: new ControlPlane({ client, table }),
  builds: new Builds(store),
  store,
  tenantRegistry: async () => {
    tenantRegistry ??= await ecrRegistry(ecr, requireEnv('REGISTRY_HOST'));
    return tenantRegistry;
  },
  access: new AwsInstallAccess({ sts: new STSClient({}), tenant: requireEnv('FERRY_TENANT') }),
  destinationPrefix: () => requireEnv('INSTALL_REPOSITORY_PREFIX'),
});

export type SyncStepEvent =
  | ({ action: 'plan' } & SyncInput)
  | ({
      action: 'copy-blob';
      sourceRepository: string;
      destinationRepository: string;
      blob: BlobDescriptor;
    } & SyncInput)
  | ({ action: 'finish'; plan: SyncPlan; copied: CopiedBlob[] } & SyncInput)
  | ({ action: 'fail'; error: { Error?: string; Cause?: string } } & SyncInput);

/** The sync workflow's Lambda task. Answers digests and counts only: never credentials. */
export async function handler(event: SyncStepEvent): Promise<unknown> {
  logger.appendKeys({ installId: event.installId, buildId: event.buildId, releaseId: event.releaseId });
  logger.info('sync step', { action: event.action });
  switch (event.action) {
    case 'plan':
      return steps.plan(event);
    case 'copy-blob':
      return steps.copyBlob(event);
    case 'finish':
      return steps.finish(event);
    case 'fail':
      return steps.fail(event);
    default:
      throw new Error(`sync step: unknown action in ${JSON.stringify(event)}`);
  }
}
