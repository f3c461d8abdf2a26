import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { OUTPUTS_PREFIX } from '../lambda/deploy/runner';
import { acknowledgeProjectDefaults, addPackagingTool, grantStartBuildSync } from './codebuild-support';
import { acknowledgeKmsDataKeyGrant, acknowledgeOnGrantee, nagArnOf } from './nag';
import { TenantLogGroup } from './tenant-log-group';

/** Where the deploy function writes each build's input (lambda/deploy/runner-platform.ts). */
const INPUTS_PREFIX = 'inputs/';

export interface DeployRunnerProps {
  /** Encrypts the runner's builds, logs and outputs bucket. */
  readonly encryptionKey: kms.IKey;
  /** The longest a deploy may run. @default Duration.minutes(60) */
  readonly timeout?: Duration;
  /** @default codebuild.ComputeType.SMALL */
  readonly computeType?: codebuild.ComputeType;
  /** How long an outputs object is kept when nobody reads it. @default Duration.days(1) */
  readonly outputsExpiration?: Duration;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the log group and the outputs bucket when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The tenant's deploy runner: a CodeBuild project on ARM64 that the deploy-install workflow starts
 * with a buildspec generated per deploy (lambda/deploy/runner.ts) to apply a helm, terraform or
 * custom component in an install's account. The build assumes the install's role itself; what it
 * applied comes back through the outputs bucket, where its role may write only under `outputs/`.
 *
 * What this construct does not grant: assuming install roles and pulling from the tenant registry,
 * which the stack that composes it decides.
 */
export class DeployRunner extends Construct {
  public readonly project: codebuild.IProject;
  public readonly role: iam.IRole;
  public readonly logGroup: logs.ILogGroup;
  /** Where runs write their outputs (`outputs/…`), encrypted with the tenant key, expired after a day. */
  public readonly outputsBucket: s3.IBucket;
  /** The image deploys run in unless a custom plugin names its own (StartBuild imageOverride). */
  public readonly defaultImage: string;
  /** Where buildspecs fetch the packaging tool from (`s3://…`); also the project's FERRY_TOOLS_S3_URI. */
  public readonly toolsS3Uri: string;
  private readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: DeployRunnerProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(60);
    if (timeout.toMinutes() < 5 || timeout.toMinutes() > 480) {
      throw new Error(
        `DeployRunner ${id}: timeout must be between 5 and 480 minutes, got ${timeout.toMinutes()}`,
      );
    }
    const expiration = props.outputsExpiration ?? Duration.days(1);
    if (expiration.toDays() < 1 || expiration.toDays() > 30) {
      throw new Error(
        `DeployRunner ${id}: outputsExpiration must be between 1 and 30 days, got ${expiration.toHumanString()}`,
      );
    }
    this.encryptionKey = props.encryptionKey;

    this.logGroup = new TenantLogGroup(this, 'Logs', {
      encryptionKey: props.encryptionKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    }).logGroup;

    const bucket = new s3.Bucket(this, 'Outputs', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      // The encryption context is then the bucket's ARN, which the KMS grants below require.
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      lifecycleRules: [
        {
          id: 'ExpireOutputs',
          expiration,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.outputsBucket = bucket;
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Holds only short-lived deploy outputs, written by the runner role and read then deleted by the' +
        ' deploy step role; the IMS keeps no access-log bucket, and both roles are logged by CloudTrail.',
    });

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('codebuild.amazonaws.com'),
      description: 'Ferry deploy runner',
    });
    this.role = role;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOutputs',
        actions: ['s3:PutObject'],
        resources: [bucket.arnForObjects(`${OUTPUTS_PREFIX}*`)],
      }),
    );
    // SSE-KMS writes (a multipart write also decrypts), through S3 and for this bucket only.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptOutputs',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [props.encryptionKey.keyArn],
        conditions: this.viaOutputsBucket(),
      }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagArnOf(bucket)}/${OUTPUTS_PREFIX}*]`,
      reason:
        "Each deploy writes its own object under outputs/ of the runner's own bucket; keys are per deploy.",
    });
    // Each build's input (values, the ExternalId) is an object the deploy function wrote: read it.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadInputs',
        actions: ['s3:GetObject'],
        resources: [bucket.arnForObjects(`${INPUTS_PREFIX}*`)],
      }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagArnOf(bucket)}/${INPUTS_PREFIX}*]`,
      reason:
        "Each build reads its own input object under inputs/ of the runner's own bucket; keys are per deploy.",
    });

    const buildImage = codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0;
    this.defaultImage = buildImage.imageId;
    // The packaging tool, which reads Terraform module artifacts.
    this.toolsS3Uri = addPackagingTool(this, role);

    const project = new codebuild.Project(this, 'Project', {
      description:
        'Ferry deploy runner: applies a helm, terraform or custom component in an install account' +
        ' with the buildspec the deploy-install workflow generates',
      role,
      encryptionKey: props.encryptionKey,
      timeout,
      environment: {
        buildImage,
        computeType: props.computeType ?? codebuild.ComputeType.SMALL,
        privileged: false,
        environmentVariables: { FERRY_TOOLS_S3_URI: { value: this.toolsS3Uri } },
      },
      // Every StartBuild passes the buildspec generated for that deploy; a build started without one
      // fails at once instead of doing something unintended.
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: {
          build: {
            commands: [
              'echo "Ferry starts deploys with a generated buildspec (buildspecOverride); none was given" >&2',
              'exit 1',
            ],
          },
        },
      }),
      logging: { cloudWatch: { logGroup: this.logGroup } },
    });
    this.project = project;

    // CodeBuild's own grant on the project's encryption key (build artifacts and environment).
    acknowledgeKmsDataKeyGrant(role, 'The deploy runner project');
    acknowledgeProjectDefaults(role, project);
  }

  /**
   * What Step Functions' codebuild:startBuild.sync integration needs: start, watch and stop this
   * project's builds, and the managed EventBridge rule it uses to learn when a build ends.
   */
  grantStartBuildSync(grantee: iam.IGrantable): void {
    grantStartBuildSync(this.project, grantee);
  }

  /**
   * Read and delete runs' outputs (`outputs/*`), and decrypt them through S3. Listing the bucket
   * lets S3 answer a missing object with 404 (NoSuchKey) rather than 403.
   */
  grantReadOutputs(grantee: iam.IGrantable): void {
    const bucket = this.outputsBucket;
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject', 's3:DeleteObject'],
      resourceArns: [bucket.arnForObjects(`${OUTPUTS_PREFIX}*`)],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      // No s3:prefix condition: S3 checks ListBucket for a GetObject without one.
      resourceArns: [bucket.bucketArn],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:Decrypt'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: this.viaOutputsBucket(),
    });
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::${nagArnOf(bucket)}/${OUTPUTS_PREFIX}*]`,
      "Each deploy's outputs are one object under outputs/ of the deploy runner's own bucket; keys are per deploy.",
    );
  }

  /**
   * Write and delete runs' inputs (`inputs/*`): what a build reads first, kept out of workflow
   * state and CodeBuild's records.
   */
  grantWriteInputs(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject', 's3:DeleteObject'],
      resourceArns: [this.outputsBucket.arnForObjects(`${INPUTS_PREFIX}*`)],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:GenerateDataKey'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: this.viaOutputsBucket(),
    });
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::${nagArnOf(this.outputsBucket)}/${INPUTS_PREFIX}*]`,
      "Each deploy's input is one object under inputs/ of the deploy runner's own bucket; keys are per deploy.",
    );
  }

  /** KMS use through S3 in this region, for objects of the outputs bucket only. */
  private viaOutputsBucket(): Record<string, Record<string, string>> {
    return {
      StringEquals: {
        'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com`,
        'kms:EncryptionContext:aws:s3:arn': this.outputsBucket.bucketArn,
      },
    };
  }
}
