import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeProjectDefaults, addPackagingTool, grantStartBuildSync } from './codebuild-support';
import type { Registry } from './registry';
import { TenantLogGroup } from './tenant-log-group';

export interface BuildAgentProps {
  /** The registry builds push their artifacts to. */
  readonly registry: Registry;
  /** Encrypts build artifacts, logs and the environment. */
  readonly encryptionKey: kms.IKey;
  /** The longest a build may run. @default Duration.minutes(60) */
  readonly timeout?: Duration;
  /** @default codebuild.ComputeType.SMALL */
  readonly computeType?: codebuild.ComputeType;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the build log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The tenant's build agent: a CodeBuild project on ARM64 that the build workflow starts with a
 * buildspec generated for each build (StartBuild `buildspecOverride`). Its role can push only to
 * this tenant's registry and write only to its own log group.
 */
export class BuildAgent extends Construct {
  public readonly project: codebuild.IProject;
  public readonly role: iam.IRole;
  public readonly logGroup: logs.ILogGroup;
  /** The image builds run in unless a custom plugin names its own (StartBuild imageOverride). */
  public readonly defaultImage: string;
  /** Where buildspecs fetch the packaging tool from (`s3://…/ferry-package.cjs`). */
  public readonly toolsS3Uri: string;

  /**
   * What Step Functions' codebuild:startBuild.sync integration needs: start, watch and stop this
   * project's builds, and the managed EventBridge rule it uses to learn when a build ends.
   */
  grantStartBuildSync(grantee: iam.IGrantable): void {
    grantStartBuildSync(this.project, grantee);
  }

  constructor(scope: Construct, id: string, props: BuildAgentProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(60);
    if (timeout.toMinutes() < 5 || timeout.toMinutes() > 480) {
      throw new Error(
        `BuildAgent ${id}: timeout must be between 5 and 480 minutes, got ${timeout.toMinutes()}`,
      );
    }
    this.logGroup = new TenantLogGroup(this, 'Logs', {
      encryptionKey: props.encryptionKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    }).logGroup;
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('codebuild.amazonaws.com'),
      description: 'Ferry build agent',
    });
    this.role = role;

    const buildImage = codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0;
    this.defaultImage = buildImage.imageId;
    this.toolsS3Uri = addPackagingTool(this, role);

    const project = new codebuild.Project(this, 'Project', {
      description: 'Ferry build agent: runs the buildspec the build workflow generates for each build',
      role,
      encryptionKey: props.encryptionKey,
      timeout,
      environment: {
        buildImage,
        computeType: props.computeType ?? codebuild.ComputeType.SMALL,
        privileged: false,
      },
      // Every StartBuild passes the buildspec generated for that build; a build started without
      // one fails at once instead of doing something unintended.
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: {
          build: {
            commands: [
              'echo "Ferry starts builds with a generated buildspec (buildspecOverride); none was given" >&2',
              'exit 1',
            ],
          },
        },
      }),
      logging: { cloudWatch: { logGroup: this.logGroup } },
    });
    this.project = project;
    props.registry.grantPush(role);

    acknowledgeProjectDefaults(role, project);
  }
}
