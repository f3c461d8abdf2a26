import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface TenantKeyProps {
  /** The tenant the key belongs to; names the alias `alias/ferry/<tenant>`. */
  readonly tenant: string;
  /** What happens to the key when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The tenant's customer-managed KMS key: encrypts its state table, registry, build logs and log
 * groups. Rotated yearly; CloudWatch Logs may use it only for this tenant's log groups.
 */
export class TenantKey extends Construct {
  public readonly key: kms.IKey;

  constructor(scope: Construct, id: string, props: TenantKeyProps) {
    super(scope, id);
    const key = new kms.Key(this, 'Key', {
      description: `Ferry tenant ${props.tenant}: state, registry and logs`,
      enableKeyRotation: true,
      alias: `alias/ferry/${props.tenant}`,
      pendingWindow: Duration.days(30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogsForThisStackOnly',
        principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*`,
          },
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        },
      }),
    );
    this.key = key;
  }
}
