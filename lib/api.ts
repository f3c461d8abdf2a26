import { type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { TenantLogGroup } from './tenant-log-group';

export interface ApiProps {
  /** The API's name in the console. @default the stack name (`Ferry-<tenant>`) */
  readonly name?: string;
  /** The function that serves every /v1 route. */
  readonly handler: lambda.IFunction;
  /** Encrypts the access log group. */
  readonly encryptionKey: kms.IKey;
  /** Steady-state requests per second across the stage. @default 50 */
  readonly throttlingRateLimit?: number;
  /** Burst requests across the stage. @default 100 */
  readonly throttlingBurstLimit?: number;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the access log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The IMS's REST API: every method under /v1 requires IAM (SigV4) auth and is proxied to one
 * handler that routes and validates. Access logs (JSON), X-Ray tracing and stage throttling are on.
 */
export class Api extends Construct {
  public readonly restApi: apigateway.RestApi;
  public readonly accessLogGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const rate = props.throttlingRateLimit ?? 50;
    const burst = props.throttlingBurstLimit ?? 100;
    if (!(rate > 0) || !(burst >= 1) || !Number.isInteger(burst)) {
      throw new Error(
        `Api ${id}: throttlingRateLimit must be > 0 and throttlingBurstLimit a whole number >= 1`,
      );
    }
    this.accessLogGroup = new TenantLogGroup(this, 'AccessLogs', {
      encryptionKey: props.encryptionKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    }).logGroup;

    this.restApi = new apigateway.RestApi(this, 'RestApi', {
      restApiName: props.name ?? Stack.of(this).stackName,
      description: 'Ferry infrastructure management server',
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      cloudWatchRole: false,
      disableExecuteApiEndpoint: false,
      deployOptions: {
        stageName: 'prod',
        tracingEnabled: true,
        throttlingRateLimit: rate,
        throttlingBurstLimit: burst,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogGroup),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
    });
    const integration = new apigateway.LambdaIntegration(props.handler, { proxy: true });
    const v1 = this.restApi.root.addResource('v1');
    v1.addResource('{proxy+}').addMethod('ANY', integration);

    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-APIG2',
      reason:
        'Every route is a Lambda proxy; the handler validates bodies, parameters and sizes against the schemas that generate the OpenAPI document.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-APIG3',
      reason:
        'Every route requires SigV4 and the stage is throttled; a WAF web ACL is an account-level choice left to the vendor.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-APIG6',
      reason:
        'Execution logging needs the account-wide API Gateway CloudWatch role, a singleton a per-tenant stack must not own; access logs are on.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-COG4',
      reason: 'The API authorizes callers with IAM (SigV4), not Cognito.',
    });
  }
}
