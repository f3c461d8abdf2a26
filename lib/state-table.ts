import { Aws, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import {
  STATE_TABLE_INDEXES,
  STATE_TABLE_KEYS,
  STATE_TABLE_TTL_ATTRIBUTE,
} from '../lambda/shared/state-schema';
import { acknowledgeOnGrantee, nagArnOf } from './nag';

const READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
];
const WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

export interface StateTableProps {
  /** Encrypts the table at rest. */
  readonly encryptionKey: kms.IKey;
  /** Refuses DeleteTable while set. @default true */
  readonly deletionProtection?: boolean;
  /** What happens to the table when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The tenant's single DynamoDB table (apps, components, installs, builds, releases and their
 * history), keyed as lambda/shared/state-schema.ts says: on-demand, encrypted with the tenant key,
 * point-in-time recovery, TTL for expiring records.
 */
export class StateTable extends Construct {
  public readonly table: dynamodb.ITable;
  private readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: StateTableProps) {
    super(scope, id);
    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: STATE_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: STATE_TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: STATE_TABLE_TTL_ATTRIBUTE,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    for (const index of STATE_TABLE_INDEXES) {
      table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    this.table = table;
    this.encryptionKey = props.encryptionKey;
  }

  /** Item reads and queries (table and indexes); the tenant key only as DynamoDB uses it. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.grantItems(grantee, READ_ACTIONS);
  }

  /**
   * Item reads, writes and transactions (table and indexes); never Scan. The tenant key may be used
   * only through DynamoDB (kms:ViaService), so a grantee cannot decrypt what else the key sealed.
   */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return this.grantItems(grantee, [...READ_ACTIONS, ...WRITE_ACTIONS]);
  }

  private grantItems(grantee: iam.IGrantable, actions: readonly string[]): iam.Grant {
    this.acknowledgeIndexes(grantee);
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: [...actions],
      resourceArns: [this.table.tableArn, `${this.table.tableArn}/index/*`],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Aws.REGION}.amazonaws.com` } },
    });
    return grant;
  }

  private acknowledgeIndexes(grantee: iam.IGrantable): void {
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::${nagArnOf(this.table)}/index/*]`,
      "Queries on the state table's own global secondary indexes.",
    );
  }
}
