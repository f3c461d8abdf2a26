import { RemovalPolicy } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface TenantLogGroupProps {
  /** Encrypts the log events. */
  readonly encryptionKey: kms.IKey;
  /** How long events are kept. @default logs.RetentionDays.THREE_MONTHS */
  readonly retention?: logs.RetentionDays;
  /** What happens to the log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** A log group encrypted with the tenant key and with a retention: every part of the IMS logs into one. */
export class TenantLogGroup extends Construct {
  public readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: TenantLogGroupProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Resource', {
      encryptionKey: props.encryptionKey,
      retention: props.retention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
