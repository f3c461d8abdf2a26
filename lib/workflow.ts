import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { loadDefinition } from '../stepfunctions/definitions';
import { nagArnOf } from './nag';
import { TenantLogGroup } from './tenant-log-group';

export interface WorkflowProps {
  /** The definition to deploy: `stepfunctions/<definitionName>.asl.json`. */
  readonly definitionName: string;
  /** The function each function placeholder stands for; the workflow may invoke only these. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Plain values for the other placeholders (a CodeBuild project name …). @default none */
  readonly substitutions?: Readonly<Record<string, string>>;
  /** Encrypts the workflow's execution data and log group. */
  readonly encryptionKey: kms.IKey;
  /** The longest one execution may run. @default Duration.hours(1) */
  readonly timeout?: Duration;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Folder the definition is read from. @default the repository's stepfunctions/ */
  readonly definitionsDir?: string;
  /**
   * A fixed name, for a state machine whose ARN others must know without referring to it (a
   * function the workflow invokes and that calls back into it would otherwise be a cycle).
   * @default a name CloudFormation generates
   */
  readonly stateMachineName?: string;
}

/**
 * A Step Functions state machine whose definition is a file in stepfunctions/, inlined in the
 * template (not an S3 asset) with each placeholder substituted by its function's ARN. Logs every
 * event (without execution data) to an encrypted log group, traces with X-Ray, and grants invoke on
 * exactly the functions it names.
 */
export class Workflow extends Construct {
  public readonly stateMachine: sfn.StateMachine;
  public readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);
    const loaded = loadDefinition(props.definitionName, props.definitionsDir);
    const given = [...Object.keys(props.functions), ...Object.keys(props.substitutions ?? {})];
    const missing = loaded.placeholders.filter((name) => !given.includes(name));
    const unused = given.filter((name) => !loaded.placeholders.includes(name));
    if (missing.length > 0 || unused.length > 0) {
      throw new Error(
        `Workflow ${id}: ${loaded.file} needs values for [${loaded.placeholders.join(', ')}]` +
          (missing.length > 0 ? `; missing: ${missing.join(', ')}` : '') +
          (unused.length > 0 ? `; not in the definition: ${unused.join(', ')}` : ''),
      );
    }
    this.logGroup = new TenantLogGroup(this, 'Logs', {
      encryptionKey: props.encryptionKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    }).logGroup;

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      comment: `Ferry workflow ${loaded.name}`,
      definitionBody: sfn.DefinitionBody.fromString(JSON.stringify(loaded.definition)),
      definitionSubstitutions: {
        ...props.substitutions,
        ...Object.fromEntries(Object.entries(props.functions).map(([name, fn]) => [name, fn.functionArn])),
      },
      stateMachineType: sfn.StateMachineType.STANDARD,
      timeout: props.timeout ?? Duration.hours(1),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      encryptionConfiguration: new sfn.CustomerManagedEncryptionConfiguration(props.encryptionKey),
    });
    for (const fn of Object.values(props.functions)) fn.grantInvoke(this.stateMachine);

    const role = this.stateMachine.role;
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'CloudWatch Logs delivery (logs:CreateLogDelivery and friends) and X-Ray tracing support no resource-level permissions.',
    });
    for (const fn of Object.values(props.functions)) {
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagArnOf(fn)}:*]`,
        reason:
          'Invoke on the versions and aliases of a function this workflow names; CDK grants it so retries after a publish work.',
      });
    }
  }
}
