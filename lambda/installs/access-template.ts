/**
 * The install access template (docs/install-access.md) made ready for one install: the template
 * the CDK app synthesized once per tenant (lib/access-template.ts), with its parameters' defaults
 * set to this install's values, and the console link that creates it. Plain code: it runs in the
 * API's Lambda, which receives the template as JSON and never loads the CDK.
 */
import { ACCOUNT_ID } from '../domain/names';
import { isAwsRegion } from '../domain/regions';
import { installRoleArn, installRoleName } from '../shared/install-role';

/** The template's parameters; lib/install-access-stack.ts declares them under these names. */
export const ACCESS_PARAMETERS = {
  trustedRoleArns: 'TrustedRoleArns',
  externalId: 'ExternalId',
  installId: 'InstallId',
  repositoryPrefix: 'RepositoryPrefix',
  permissionsBoundaryArn: 'PermissionsBoundaryArn',
} as const;

/** The repository namespace installs use unless the customer picks another. */
export const DEFAULT_INSTALL_REPOSITORY_PREFIX = 'ferry';

/** IAM role names are at most 64 characters. */
export const ROLE_NAME_MAX = 64;

/**
 * The install id as the template's InstallId parameter accepts it: the IMS's `inst_<ulid>`, whose
 * part after `_` names the install's Terraform state bucket (stateBucketName).
 */
export const INSTALL_ID_PATTERN = '[a-z]+_[0-9a-z]+';

/** What STS accepts as an ExternalId (2-1224 characters). */
export const EXTERNAL_ID_PATTERN = '[\\w+=,.@:/-]+';

const ROLE_ARN = /^arn:(aws[a-z-]*):iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/** The template, the install or the trusted roles cannot make a working access stack. */
export class AccessTemplateError extends Error {
  override readonly name = 'AccessTemplateError';
}

export interface AccessTemplateInstall {
  readonly id: string;
  readonly appName: string;
  readonly accountId: string;
  readonly region: string;
  readonly externalId: string;
}

export interface AccessTemplateRequest {
  /** The tenant the template was synthesized for. */
  readonly tenant: string;
  readonly install: AccessTemplateInstall;
  /** The tenant's workflow task roles that may assume the install role; at least one. */
  readonly trustedRoleArns: readonly string[];
  /** Where the console fetches the template from (S3, presigned or public); without it the link has none. */
  readonly templateUrl?: string;
}

export interface AccessTemplateForInstall {
  /** A copy of the template whose parameter defaults are this install's values. */
  readonly template: Record<string, unknown>;
  /** The install's parameter values, by parameter name. */
  readonly parameters: Readonly<Record<string, string>>;
  /** The console's quick-create link, every parameter filled in. */
  readonly quickCreateUrl: string;
  readonly stackName: string;
  /** The role the stack creates, which the IMS assumes. */
  readonly roleArn: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The partition a region belongs to: what its ARNs and its console say. */
export function partitionOf(region: string): 'aws' | 'aws-cn' | 'aws-us-gov' {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/** The CloudFormation stack name for an install's access: `ferry-<tenant>-<installId>`, `[a-z0-9-]` only. */
export function accessStackName(tenant: string, installId: string): string {
  return `ferry-${tenant}-${installId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 128);
}

function consoleBase(region: string): string {
  switch (partitionOf(region)) {
    case 'aws-cn':
      return `https://${region}.console.amazonaws.cn`;
    case 'aws-us-gov':
      return 'https://console.amazonaws-us-gov.com';
    default:
      return `https://${region}.console.aws.amazon.com`;
  }
}

/** The console link that opens "Quick create stack" with the stack name and parameters filled in. */
export function quickCreateUrl(options: {
  region: string;
  stackName: string;
  parameters: Readonly<Record<string, string>>;
  templateUrl?: string;
}): string {
  const query: [string, string][] = [];
  if (options.templateUrl !== undefined) query.push(['templateURL', options.templateUrl]);
  query.push(['stackName', options.stackName]);
  for (const [name, value] of Object.entries(options.parameters)) query.push([`param_${name}`, value]);
  const encoded = query.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join('&');
  const region = encodeURIComponent(options.region);
  return `${consoleBase(options.region)}/cloudformation/home?region=${region}#/stacks/quickcreate?${encoded}`;
}

function validate(template: Json, request: AccessTemplateRequest): Json {
  const { tenant, install, trustedRoleArns } = request;
  const where = `install ${install.id}`;
  const parameters = template.Parameters;
  const missing = Object.values(ACCESS_PARAMETERS).filter(
    (name) => !isObject(parameters) || !isObject(parameters[name]),
  );
  if (missing.length > 0) {
    throw new AccessTemplateError(`the access template lacks the parameters ${missing.join(', ')}`);
  }
  const metadata = isObject(template.Metadata) ? template.Metadata : {};
  const synthesizedFor = isObject(metadata.Ferry) ? metadata.Ferry.tenant : undefined;
  if (synthesizedFor !== undefined && synthesizedFor !== tenant) {
    throw new AccessTemplateError(
      `the access template was synthesized for tenant '${String(synthesizedFor)}', not '${tenant}'`,
    );
  }
  if (!new RegExp(`^${INSTALL_ID_PATTERN}$`).test(install.id)) {
    throw new AccessTemplateError(`${where}: the id must be a prefix, '_' and lowercase letters or digits`);
  }
  if (installRoleName(tenant, install.id).length > ROLE_NAME_MAX) {
    throw new AccessTemplateError(
      `${where}: role name ${installRoleName(tenant, install.id)} is over 64 characters`,
    );
  }
  if (!ACCOUNT_ID.test(install.accountId)) {
    throw new AccessTemplateError(
      `${where}: accountId '${install.accountId}' is not a 12-digit AWS account id`,
    );
  }
  if (!isAwsRegion(install.region)) {
    throw new AccessTemplateError(`${where}: region '${install.region}' is not an AWS region`);
  }
  const externalId = install.externalId;
  if (
    externalId.length < 2 ||
    externalId.length > 1224 ||
    !new RegExp(`^${EXTERNAL_ID_PATTERN}$`).test(externalId)
  ) {
    throw new AccessTemplateError(`${where}: the externalId is not 2-1224 of letters, digits and +=,.@:/_-`);
  }
  if (!Array.isArray(trustedRoleArns) || trustedRoleArns.length === 0) {
    throw new AccessTemplateError(
      `${where}: trustedRoleArns is empty: without the tenant's task roles no one can assume the role`,
    );
  }
  const partition = partitionOf(install.region);
  trustedRoleArns.forEach((arn, index) => {
    const match = ROLE_ARN.exec(arn);
    if (!match) {
      throw new AccessTemplateError(`trustedRoleArns[${index}]: '${arn}' is not an IAM role ARN`);
    }
    if (match[1] !== partition) {
      throw new AccessTemplateError(
        `trustedRoleArns[${index}]: '${arn}' is in partition ${match[1]}; ` +
          `${where} is in ${partition} (${install.region})`,
      );
    }
  });
  if (request.templateUrl !== undefined && !request.templateUrl.startsWith('https://')) {
    throw new AccessTemplateError(`templateUrl must be an https URL, got '${request.templateUrl}'`);
  }
  return parameters as Json;
}

/**
 * Makes the access template ready for one install: a deep copy whose parameter defaults are the
 * install's values (so the template alone creates the right stack), those values, the stack name,
 * the role ARN the stack will create and the console's quick-create link. The template passed in
 * is never changed.
 */
export function accessTemplateFor(
  template: Record<string, unknown>,
  request: AccessTemplateRequest,
): AccessTemplateForInstall {
  validate(template, request);
  const { tenant, install } = request;
  const values: Record<string, string> = {
    [ACCESS_PARAMETERS.trustedRoleArns]: request.trustedRoleArns.join(','),
    [ACCESS_PARAMETERS.externalId]: install.externalId,
    [ACCESS_PARAMETERS.installId]: install.id,
  };

  const copy = structuredClone(template);
  const parameters = copy.Parameters as Record<string, Json>;
  for (const [name, value] of Object.entries(values)) parameters[name].Default = value;
  const what = `install ${install.id} of app ${install.appName}`;
  copy.Description = `Ferry: access for the IMS of tenant ${tenant} to ${what}`;
  const metadata = isObject(copy.Metadata) ? copy.Metadata : {};
  copy.Metadata = {
    ...metadata,
    Ferry: {
      ...(isObject(metadata.Ferry) ? metadata.Ferry : {}),
      tenant,
      installId: install.id,
      app: install.appName,
    },
  };

  const stackName = accessStackName(tenant, install.id);
  return {
    template: copy,
    parameters: values,
    stackName,
    roleArn: installRoleArn(install.accountId, tenant, install.id, partitionOf(install.region)),
    quickCreateUrl: quickCreateUrl({
      region: install.region,
      stackName,
      parameters: values,
      ...(request.templateUrl !== undefined && { templateUrl: request.templateUrl }),
    }),
  };
}
