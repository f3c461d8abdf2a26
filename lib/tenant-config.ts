/**
 * Reads and validates the tenant configuration the CDK app is synthesized with.
 * Pure functions: the CDK app passes in its context and environment, tests pass in plain objects.
 */

/** A tenant name: what `-c tenant=NAME` accepts. */
export const TENANT_NAME_PATTERN = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,19}$/;

export const TENANT_NAME_RULE =
  '1 to 20 characters: lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen';

const ACCOUNT_PATTERN = /^\d{12}$/;
const REGION_PATTERN = /^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d$/;

/** A configuration mistake the app reports as one clear line, never a stack trace. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface TenantEnvironment {
  readonly account?: string;
  readonly region?: string;
}

export interface TenantConfig {
  /** The tenants to synthesize, one stack `Ferry-<tenant>` each, in the order given. */
  readonly tenants: readonly string[];
  /** Where the stacks deploy; unset parts are resolved at deploy time (an environment-agnostic stack). */
  readonly env: TenantEnvironment;
}

export type ContextReader = (key: string) => unknown;

export function validateTenantName(name: string, where = 'tenant'): string {
  if (!TENANT_NAME_PATTERN.test(name)) {
    throw new ConfigError(`${where}: '${name}' is not a valid tenant name (${TENANT_NAME_RULE})`);
  }
  return name;
}

function contextString(context: ContextReader, key: string): string | undefined {
  const value = context(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new ConfigError(`context '${key}' must be a string, got ${typeof value}`);
  }
  return value.trim();
}

/**
 * Resolves the tenants and the environment from CDK context (`-c tenant=acme`, `-c tenants=a,b`,
 * `-c account=…`, `-c region=…`) falling back to CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION.
 */
export function tenantConfigFromContext(
  context: ContextReader,
  environment: Record<string, string | undefined>,
): TenantConfig {
  const single = contextString(context, 'tenant');
  const many = contextString(context, 'tenants');
  if (single !== undefined && many !== undefined) {
    throw new ConfigError("give either '-c tenant=NAME' or '-c tenants=A,B', not both");
  }
  let tenants: string[];
  if (single !== undefined) {
    tenants = [validateTenantName(single, "context 'tenant'")];
  } else if (many !== undefined) {
    tenants = many
      .split(',')
      .map((name, index) => validateTenantName(name.trim(), `context 'tenants' item ${index + 1}`));
    const seen = new Set<string>();
    for (const name of tenants) {
      if (seen.has(name)) throw new ConfigError(`context 'tenants': '${name}' is listed twice`);
      seen.add(name);
    }
  } else {
    throw new ConfigError("no tenant given: synthesize with '-c tenant=NAME' (or '-c tenants=A,B')");
  }

  const account = contextString(context, 'account') ?? (environment.CDK_DEFAULT_ACCOUNT || undefined);
  const region = contextString(context, 'region') ?? (environment.CDK_DEFAULT_REGION || undefined);
  if (account !== undefined && !ACCOUNT_PATTERN.test(account)) {
    throw new ConfigError(`account '${account}' is not a 12-digit AWS account id`);
  }
  if (region !== undefined && !REGION_PATTERN.test(region)) {
    throw new ConfigError(`region '${region}' is not an AWS region name such as eu-west-1`);
  }
  if (account !== undefined && region === undefined) {
    throw new ConfigError(
      `account ${account} is given without a region: add '-c region=…' (or CDK_DEFAULT_REGION)`,
    );
  }
  return { tenants, env: { account, region } };
}

/** The CloudFormation stack name of a tenant's IMS. */
export function stackNameFor(tenant: string): string {
  return `Ferry-${tenant}`;
}

/** The ECR repository namespace every repository of the tenant lives under. */
export function repositoryPrefixFor(tenant: string): string {
  return `ferry-${tenant}`;
}
