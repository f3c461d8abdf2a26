/**
 * The shapes the API answers with, as zod schemas: they document the responses in the OpenAPI
 * document, and tests check real responses against them.
 */
import { z } from 'zod';
import { ComponentSpec, InputDefinition, ReleaseStrategySchema } from '../domain/schemas';

const Timestamp = z.iso.datetime();
const Version = z.number().int().min(1).describe('Pass as If-Match to update only this version.');

export const ErrorResponse = z
  .strictObject({
    error: z.strictObject({
      code: z.string(),
      message: z.string(),
      details: z.array(z.strictObject({ path: z.string(), message: z.string() })),
    }),
  })
  .meta({ id: 'Error' });

export const AppResponse = z
  .strictObject({
    id: z.string(),
    name: z.string(),
    description: z.string().optional(),
    inputs: z.array(InputDefinition),
    componentCount: z.number().int(),
    installCount: z.number().int(),
    version: Version,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'App' });

export const ComponentResponse = z
  .strictObject({
    appId: z.string(),
    name: z.string(),
    spec: ComponentSpec,
    dependencies: z.array(z.string()).describe('dependsOn plus the components its templates reference.'),
    version: Version,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Component' });

export const InstallResponse = z
  .strictObject({
    id: z.string(),
    appId: z.string(),
    name: z.string().optional(),
    accountId: z.string(),
    region: z.string(),
    inputs: z.record(z.string(), z.string()).describe('Non-sensitive inputs as given.'),
    sensitiveInputs: z
      .array(z.string())
      .describe('Names of the sensitive inputs given; values are never returned.'),
    externalId: z.string().describe("The sts:ExternalId the install's role must require."),
    status: z.enum(['awaiting-access', 'connected', 'access-denied']),
    access: z
      .strictObject({ checkedAt: Timestamp, roleArn: z.string(), cause: z.string().optional() })
      .optional()
      .describe("The last check of the customer's role."),
    version: Version,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Install' });

export const EventResponse = z
  .strictObject({
    id: z.string(),
    appId: z.string(),
    installId: z.string().optional(),
    type: z.string(),
    at: Timestamp,
    actor: z.string(),
    message: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'Event' });

export const HealthResponse = z
  .strictObject({ status: z.literal('ok'), tenant: z.string() })
  .meta({ id: 'Health' });

export function pageOf<T extends z.ZodType>(item: T, id: string) {
  return z
    .strictObject({
      items: z.array(item),
      nextToken: z
        .string()
        .optional()
        .describe('Pass back as nextToken for the next page; absent on the last.'),
    })
    .meta({ id });
}

export const BuildResponse = z
  .strictObject({
    id: z.string(),
    appId: z.string(),
    appName: z.string(),
    component: z.string(),
    componentType: z.enum(['image', 'dockerfile', 'helm', 'terraform', 'custom']),
    componentVersion: z.number().int(),
    spec: ComponentSpec,
    ref: z.string().optional(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed']),
    artifact: z
      .strictObject({
        uri: z.string(),
        registry: z.string().optional(),
        repository: z.string().optional(),
        tag: z.string().optional(),
        digest: z.string().optional(),
        size: z.number().int().optional(),
        mediaType: z.string().optional(),
        chart: z.strictObject({ repo: z.string(), name: z.string(), version: z.string() }).optional(),
      })
      .optional(),
    sourceRevision: z.string().optional(),
    failure: z.strictObject({ step: z.string(), message: z.string() }).optional(),
    logsUrl: z.string().optional(),
    actor: z.string(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    startedAt: Timestamp.optional(),
    finishedAt: Timestamp.optional(),
  })
  .meta({ id: 'Build' });

export const AccessTemplateResponse = z
  .strictObject({
    template: z
      .record(z.string(), z.unknown())
      .describe('The CloudFormation template, parameter defaults set for this install.'),
    parameters: z.record(z.string(), z.string()),
    quickCreateUrl: z.string(),
    stackName: z.string(),
    roleArn: z.string().describe('The role the stack creates, which the IMS assumes.'),
  })
  .meta({ id: 'AccessTemplate' });

export const DeployedComponentsResponse = z
  .strictObject({
    items: z.array(
      z.strictObject({
        installId: z.string(),
        appId: z.string(),
        component: z.string(),
        status: z.enum(['deployed', 'failed', 'skipped', 'removed']),
        buildId: z.string().optional(),
        digest: z.string().optional(),
        outputs: z.record(z.string(), z.string()).describe('Non-sensitive outputs only.'),
        sensitiveOutputs: z
          .array(z.string())
          .describe('Names of sensitive outputs; their values are never stored.'),
        releaseId: z.string().optional(),
        error: z
          .strictObject({ step: z.string(), account: z.string(), region: z.string(), cause: z.string() })
          .optional(),
        actor: z.string(),
        updatedAt: Timestamp,
      }),
    ),
  })
  .meta({ id: 'DeployedComponents' });

const ReleaseInstallStatus = z.enum(['pending', 'deploying', 'succeeded', 'failed', 'cancelled', 'skipped']);

export const ReleaseInstallResponse = z
  .strictObject({
    installId: z.string(),
    wave: z.number().int(),
    status: ReleaseInstallStatus,
    cause: z.string().optional().describe('Why it failed, was skipped or cancelled.'),
    updatedAt: Timestamp,
  })
  .meta({ id: 'ReleaseInstall' });

const releaseFields = {
  id: z.string(),
  appId: z.string(),
  status: z.enum([
    'running',
    'cancelling',
    'succeeded',
    'partially-succeeded',
    'stopped',
    'cancelled',
    'failed',
  ]),
  builds: z.record(z.string(), z.string()).describe('The build each component deploys, pinned at creation.'),
  strategy: ReleaseStrategySchema,
  retryOf: z.string().optional(),
  installCount: z.number().int(),
  waveSize: z.number().int(),
  waveCount: z.number().int(),
  wavesRun: z.number().int(),
  currentWave: z.number().int(),
  counts: z.record(ReleaseInstallStatus, z.number().int()).describe('Installs by status.'),
  reason: z.string().optional().describe('Why the release is where it is.'),
  cancelRequestedBy: z.string().optional(),
  actor: z.string(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Timestamp.optional(),
};

export const ReleaseResponse = z.strictObject(releaseFields).meta({ id: 'Release' });

export const ReleaseDetailResponse = z
  .strictObject({
    ...releaseFields,
    installs: pageOf(ReleaseInstallResponse, 'ReleaseInstallPage').describe(
      'A page of its installs in wave order; pass limit and nextToken for more.',
    ),
  })
  .meta({ id: 'ReleaseDetail' });

export const TeardownResponse = z
  .strictObject({
    installId: z.string(),
    teardownId: z.string().describe("Names the teardown in the install's history."),
  })
  .meta({ id: 'Teardown' });
