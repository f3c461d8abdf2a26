import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  DefaultStackSynthesizer,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  type StackProps,
  Tags,
  Validations,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import {
  ACCESS_PARAMETERS,
  DEFAULT_INSTALL_REPOSITORY_PREFIX,
  EXTERNAL_ID_PATTERN,
  INSTALL_ID_PATTERN,
  ROLE_NAME_MAX,
} from '../lambda/installs/access-template';
import { installRoleName } from '../lambda/shared/install-role';
import { validateTenantName } from './tenant-config';

export interface InstallAccessStackProps extends StackProps {
  /** The tenant whose IMS the customer grants access to; see TENANT_NAME_PATTERN. */
  readonly tenant: string;
  /** How long the state bucket keeps superseded state versions. @default Duration.days(90) */
  readonly noncurrentStateRetention?: Duration;
  /** What happens to the state bucket when the customer deletes the stack. @default RemovalPolicy.RETAIN */
  readonly stateRemovalPolicy?: RemovalPolicy;
}

/**
 * A list of role ARNs given as one CommaDelimitedList parameter: renders `"AWS": {"Ref": …}`, so
 * the trust policy names exactly the roles the parameter lists and nothing else.
 */
class RoleArnListPrincipal extends iam.PrincipalBase {
  constructor(private readonly arns: string[]) {
    super();
  }

  public get policyFragment(): iam.PrincipalPolicyFragment {
    return new iam.PrincipalPolicyFragment({ AWS: this.arns });
  }

  public dedupeString(): string | undefined {
    return undefined;
  }

  public override toString(): string {
    return 'RoleArnListPrincipal';
  }
}

/**
 * The CloudFormation template a customer creates in their account for one install of a tenant's
 * app (docs/install-access.md): a role `ferry.<tenant>.<installId>` that only the tenant's workflow
 * task roles may assume, and only with the install's ExternalId, allowed what deploys need (ECR
 * repositories under a prefix, ECS services, EKS cluster lookup), and the Terraform state bucket it
 * may read and write. One synthesized template serves every install: what differs per install is
 * a parameter.
 */
export class InstallAccessStack extends Stack {
  public readonly tenant: string;
  public readonly role: iam.Role;
  public readonly stateBucket: s3.Bucket;
  /** The role ECS tasks of this install run with (`/ferry/ferry.<tenant>.<installId>.exec`). */
  public readonly taskExecutionRole: iam.Role;

  constructor(scope: Construct, id: string, props: InstallAccessStackProps) {
    super(scope, id, {
      // Created from the console in the customer's account: no CDK bootstrap there, no assets.
      synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
      analyticsReporting: false,
      description: `Ferry: access for the IMS of tenant ${props.tenant} to one install in this account`,
      ...props,
    });
    this.tenant = validateTenantName(props.tenant, 'InstallAccessStack tenant');
    Tags.of(this).add('ferry:tenant', this.tenant);

    const trustedRoleArns = new CfnParameter(this, ACCESS_PARAMETERS.trustedRoleArns, {
      type: 'CommaDelimitedList',
      description: "The IMS's workflow task roles that may assume the install role (filled in by the IMS)",
    });
    const externalId = new CfnParameter(this, ACCESS_PARAMETERS.externalId, {
      type: 'String',
      noEcho: true,
      minLength: 2,
      maxLength: 1224,
      allowedPattern: EXTERNAL_ID_PATTERN,
      description: "The install's sts:ExternalId (filled in by the IMS)",
    });
    const rolePrefix = installRoleName(this.tenant, '');
    const installId = new CfnParameter(this, ACCESS_PARAMETERS.installId, {
      type: 'String',
      minLength: 1,
      maxLength: ROLE_NAME_MAX - rolePrefix.length,
      allowedPattern: INSTALL_ID_PATTERN,
      description: 'The install this access is for (filled in by the IMS)',
    });
    const repositoryPrefix = new CfnParameter(this, ACCESS_PARAMETERS.repositoryPrefix, {
      type: 'String',
      default: DEFAULT_INSTALL_REPOSITORY_PREFIX,
      allowedPattern: '[a-z0-9]+(?:[._-][a-z0-9]+)*',
      description: 'The ECR namespace the IMS may create and push repositories under',
    });
    const permissionsBoundaryArn = new CfnParameter(this, ACCESS_PARAMETERS.permissionsBoundaryArn, {
      type: 'String',
      default: '',
      allowedPattern: '(arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+)?',
      description: 'Optional: the ARN of a managed policy to set as the role permissions boundary',
    });
    const hasBoundary = new CfnCondition(this, 'HasPermissionsBoundary', {
      expression: Fn.conditionNot(Fn.conditionEquals(permissionsBoundaryArn.valueAsString, '')),
    });
    this.templateOptions.metadata = {
      Ferry: { tenant: this.tenant },
      'AWS::CloudFormation::Interface': {
        ParameterGroups: [
          {
            Label: { default: 'Filled in by the IMS: keep as given' },
            Parameters: [
              ACCESS_PARAMETERS.trustedRoleArns,
              ACCESS_PARAMETERS.externalId,
              ACCESS_PARAMETERS.installId,
            ],
          },
          {
            Label: { default: 'Optional' },
            Parameters: [ACCESS_PARAMETERS.repositoryPrefix, ACCESS_PARAMETERS.permissionsBoundaryArn],
          },
        ],
      },
    };

    this.stateBucket = new s3.Bucket(this, 'StateBucket', {
      // Named so the IMS knows it from the install id alone (lambda/shared/install-role.ts stateBucketName).
      bucketName: Fn.join('-', [
        'ferry',
        this.tenant,
        Fn.select(1, Fn.split('_', installId.valueAsString)),
        'tfstate',
      ]),
      // SSE-S3: no key policy or permissions boundary in the customer's account can lock the
      // IMS out of its state, and nothing to pay per request.
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      lifecycleRules: [
        {
          id: 'ExpireSupersededState',
          noncurrentVersionExpiration: props.noncurrentStateRetention ?? Duration.days(90),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: props.stateRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    const arn = (service: string, resource: string, region: string = Aws.REGION) =>
      `arn:${Aws.PARTITION}:${service}:${region}:${Aws.ACCOUNT_ID}:${resource}`;
    const permissions = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'EcrLogin',
          actions: ['ecr:GetAuthorizationToken'],
          // AWS offers no resource for this action.
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'EcrRepositories',
          actions: [
            'ecr:CreateRepository',
            'ecr:DescribeRepositories',
            'ecr:BatchCheckLayerAvailability',
            'ecr:InitiateLayerUpload',
            'ecr:UploadLayerPart',
            'ecr:CompleteLayerUpload',
            'ecr:PutImage',
            'ecr:BatchGetImage',
            'ecr:GetDownloadUrlForLayer',
            'ecr:TagResource',
          ],
          resources: [arn('ecr', `repository/${repositoryPrefix.valueAsString}/*`)],
        }),
        new iam.PolicyStatement({
          sid: 'TerraformStateList',
          actions: ['s3:ListBucket'],
          resources: [this.stateBucket.bucketArn],
        }),
        new iam.PolicyStatement({
          sid: 'TerraformStateObjects',
          // State files and their `.tflock` lock files (conditional PutObject, DeleteObject).
          actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
          resources: [this.stateBucket.arnForObjects('*')],
        }),
        new iam.PolicyStatement({
          sid: 'EcsTaskDefinitions',
          actions: [
            'ecs:RegisterTaskDefinition',
            'ecs:DescribeTaskDefinition',
            'ecs:ListTaskDefinitions',
            'ecs:DeregisterTaskDefinition',
          ],
          // AWS offers no resource for these actions.
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'EcsServices',
          // Teardown scales a service to 0 and deletes it.
          actions: ['ecs:CreateService', 'ecs:UpdateService', 'ecs:DescribeServices', 'ecs:DeleteService'],
          resources: [arn('ecs', 'service/*/*')],
        }),
        new iam.PolicyStatement({
          sid: 'PassFerryTaskRoles',
          actions: ['iam:PassRole'],
          resources: [arn('iam', 'role/ferry/*', '')],
          conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        }),
        new iam.PolicyStatement({
          sid: 'EksClusters',
          actions: ['eks:DescribeCluster'],
          resources: [arn('eks', 'cluster/*')],
        }),
      ],
    });

    this.role = new iam.Role(this, 'Role', {
      roleName: installRoleName(this.tenant, installId.valueAsString),
      description: `Lets the Ferry IMS of tenant ${this.tenant} deploy one install into this account`,
      assumedBy: new RoleArnListPrincipal(trustedRoleArns.valueAsList).withConditions({
        StringEquals: { 'sts:ExternalId': externalId.valueAsString },
      }),
      maxSessionDuration: Duration.hours(1),
      inlinePolicies: { Deploy: permissions },
    });
    Tags.of(this.role).add('ferry:install', installId.valueAsString);
    const cfnRole = this.role.node.defaultChild as iam.CfnRole;
    cfnRole.permissionsBoundary = Fn.conditionIf(
      hasBoundary.logicalId,
      permissionsBoundaryArn.valueAsString,
      Aws.NO_VALUE,
    ).toString();
    Validations.of(cfnRole).acknowledge({
      id: 'CloudFormation-Validate::W1030',
      reason:
        'The empty default of PermissionsBoundaryArn is never used: HasPermissionsBoundary then drops it.',
    });

    // What ECS tasks of this install run with: pull the synced images, write their logs.
    const containerLogs = new logs.LogGroup(this, 'ContainerLogs', {
      logGroupName: Fn.join('', ['/ferry/', installId.valueAsString]),
      retention: logs.RetentionDays.THREE_MONTHS,
    });
    this.taskExecutionRole = new iam.Role(this, 'TaskExecutionRole', {
      roleName: Fn.join('', [`${installRoleName(this.tenant, '')}`, installId.valueAsString, '.exec']),
      path: '/ferry/',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Ferry: ECS task execution role of this install (image pulls, logs)',
      inlinePolicies: {
        PullAndLog: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
            new iam.PolicyStatement({
              actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
              resources: [arn('ecr', `repository/${repositoryPrefix.valueAsString}/*`)],
            }),
            new iam.PolicyStatement({
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
              resources: [`${containerLogs.logGroupArn}`],
            }),
          ],
        }),
      },
    });

    new CfnOutput(this, 'TaskExecutionRoleArn', {
      value: this.taskExecutionRole.roleArn,
      description: "The role this install's ECS tasks pull images and write logs with",
    });
    new CfnOutput(this, 'ContainerLogGroup', { value: containerLogs.logGroupName });
    new CfnOutput(this, 'RoleArn', {
      value: this.role.roleArn,
      description: 'The role the IMS assumes (with the ExternalId) to deploy this install',
    });
    new CfnOutput(this, 'StateBucketName', {
      value: this.stateBucket.bucketName,
      description: 'Terraform state bucket (versioned, encrypted, TLS only)',
    });
    new CfnOutput(this, 'StateLocking', {
      value: 'use_lockfile',
      description: 'Terraform state locking: S3 native lock files (use_lockfile = true, Terraform >= 1.10)',
    });
    // Outputs may share a parameter's name (only resources and parameters may not): these echo
    // back what the stack was created with, under the names the IMS reads.
    new CfnOutput(this, 'RepositoryPrefixOutput', {
      value: repositoryPrefix.valueAsString,
      description: 'The ECR namespace the IMS copies images into',
    }).overrideLogicalId('RepositoryPrefix');
    new CfnOutput(this, 'InstallIdOutput', {
      value: installId.valueAsString,
      description: 'The install this stack grants access to',
    }).overrideLogicalId('InstallId');
  }
}
