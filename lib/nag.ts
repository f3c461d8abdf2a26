import { type CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct, type IConstruct } from 'constructs';

/**
 * Acknowledges one cdk-nag finding on whatever holds a grantee's policy (a role and its default
 * policy). A grantee that is not a construct in this app (an imported role) has no policy here to
 * acknowledge on, so nothing is done.
 */
export function acknowledgeOnGrantee(grantee: iam.IGrantable, id: string, reason: string): void {
  const principal = grantee.grantPrincipal as unknown;
  if (principal instanceof Construct) Validations.of(principal).acknowledge({ id, reason });
}

/** How cdk-nag writes a resource's ARN attribute in a finding: `<LogicalId.Arn>`. */
export function nagArnOf(resource: IConstruct): string {
  const element = resource.node.defaultChild as CfnElement;
  return `<${Stack.of(resource).getLogicalId(element)}.Arn>`;
}

/** How cdk-nag writes a resource's Ref in a finding: `<LogicalId>`. */
export function nagRefOf(resource: IConstruct): string {
  const element = resource.node.defaultChild as CfnElement;
  return `<${Stack.of(resource).getLogicalId(element)}>`;
}

/** The KMS actions CDK's encrypt/decrypt grants use; wildcards AWS itself names in its grants. */
export function acknowledgeKmsDataKeyGrant(grantee: iam.IGrantable, what: string): void {
  for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Action::${action}]`,
      `${what}: the action family of the KMS grant on the tenant's own key, scoped to that one key ARN.`,
    );
  }
}

/** How cdk-nag writes the stack's region and account in a finding: literals, or pseudo parameters. */
export function nagEnvOf(scope: IConstruct): { region: string; account: string } {
  const { region, account } = Stack.of(scope);
  return {
    region: Token.isUnresolved(region) ? '<AWS::Region>' : region,
    account: Token.isUnresolved(account) ? '<AWS::AccountId>' : account,
  };
}
