import { join } from 'node:path';
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { nagArnOf } from './nag';
import { TenantLogGroup } from './tenant-log-group';

/** The repository's lambda/ folder: entries are given relative to it. */
const LAMBDA_DIR = join(__dirname, '..', 'lambda');

export interface FerryFunctionProps {
  /** The handler file, relative to lambda/ (for example `api/handler.ts`); it exports `handler`. */
  readonly entry: string;
  /** The Powertools service name the function logs as. */
  readonly serviceName: string;
  /** Encrypts the function's log group and environment. */
  readonly encryptionKey: kms.IKey;
  /** Extra environment variables; never secrets. @default none */
  readonly environment?: Record<string, string>;
  /** Constants inlined at bundle time (esbuild `define`): identifier -> JavaScript literal. @default none */
  readonly define?: Record<string, string>;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * A Lambda function the Ferry way: bundled by local esbuild (no Docker), Node.js 24 on ARM64,
 * Powertools logger, its own encrypted log group with retention, active tracing, and a role that
 * can write only to that log group (no managed policies).
 */
export class FerryFunction extends Construct {
  public readonly function: nodejs.NodejsFunction;
  public readonly role: iam.IRole;
  public readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: FerryFunctionProps) {
    super(scope, id);
    if (!/^[a-z0-9-]+\/[a-z0-9-]+\.ts$/.test(props.entry)) {
      throw new Error(`FerryFunction ${id}: entry '${props.entry}' must be a path like 'api/handler.ts'`);
    }
    this.logGroup = new TenantLogGroup(this, 'Logs', {
      encryptionKey: props.encryptionKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    }).logGroup;

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Ferry ${props.serviceName} function`,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:log-stream:*`],
      }),
    );
    this.role = role;

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: join(LAMBDA_DIR, props.entry),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      role,
      environmentEncryption: props.encryptionKey,
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        minify: true,
        sourceMap: true,
        target: 'node24',
        format: nodejs.OutputFormat.CJS,
        forceDockerBundling: false,
        ...(props.define && { define: props.define }),
      },
    });
    // The X-Ray policy that active tracing attaches is the only wildcard in a function role.
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions.',
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagArnOf(this.logGroup)}:log-stream:*]`,
      reason: "Log streams are created per execution environment inside the function's own log group.",
    });
  }
}
