/**
 * The role each install's customer creates for the tenant (issue: install access template), and
 * how the IMS names its sessions in that role, so CloudTrail in the customer's account says which
 * release did what.
 */

/**
 * The role's name in the customer's account, `ferry.<tenant>.<installId>`: one per install, so
 * two installs in one account never share one, and a tenant's policies can name its own roles
 * only (tenant names hold no dots, so `ferry.acme.*` never matches another tenant's).
 */
export function installRoleName(tenant: string, installId: string): string {
  return `ferry.${tenant}.${installId}`;
}

export function installRoleArn(
  accountId: string,
  tenant: string,
  installId: string,
  partition = 'aws',
): string {
  return `arn:${partition}:iam::${accountId}:role/${installRoleName(tenant, installId)}`;
}

/** An STS session name (2-64 of `[\w+=,.@-]`) naming what the session is for: `ferry-<release>`. */
export function sessionNameFor(purpose: string): string {
  const cleaned = `ferry-${purpose}`.replace(/[^\w+=,.@-]/g, '-');
  return cleaned.slice(0, 64);
}

/** The role the install's ECS tasks run with, created by the access template under the `/ferry/` path. */
export function taskExecutionRoleArn(
  accountId: string,
  tenant: string,
  installId: string,
  partition = 'aws',
): string {
  return `arn:${partition}:iam::${accountId}:role/ferry/${installRoleName(tenant, installId)}.exec`;
}

/**
 * The install's Terraform state bucket, created by the access template: `ferry-<tenant>-<ulid>-tfstate`
 * (the install id's part after `_`), at most 61 characters, so the IMS knows it without asking.
 */
export function stateBucketName(tenant: string, installId: string): string {
  const unique = installId.split('_')[1];
  if (!unique) throw new Error(`install id ${installId} is not <prefix>_<id>`);
  return `ferry-${tenant}-${unique}-tfstate`;
}
