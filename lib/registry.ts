import { Aws } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { IMAGE_TAG_MUTABILITY, LIFECYCLE_POLICY } from '../lambda/shared/registry-settings';
import { acknowledgeKmsDataKeyGrant, acknowledgeOnGrantee } from './nag';

export interface RegistryProps {
  /** The namespace every repository of this tenant lives under (`ferry-<tenant>`). */
  readonly repositoryPrefix: string;
  /** Encrypts every repository's images. */
  readonly encryptionKey: kms.IKey;
}

/**
 * The tenant's private registry: the ECR repositories under `<prefix>/`. Repositories are created
 * per component at build time (with immutable tags, scan on push and the tenant key, from
 * lambda/shared/registry-settings.ts); a creation template gives the same settings to any
 * repository ECR creates on push under the prefix.
 */
export class Registry extends Construct {
  public readonly repositoryPrefix: string;
  /** Matches every repository of this tenant, and no other tenant's. */
  public readonly repositoryArnPattern: string;
  /** The registry's host name: `<account>.dkr.ecr.<region>.<suffix>`. */
  public readonly registryHost: string;
  private readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: RegistryProps) {
    super(scope, id);
    if (!/^[a-z][a-z0-9-]*$/.test(props.repositoryPrefix)) {
      throw new Error(
        `Registry ${id}: repositoryPrefix '${props.repositoryPrefix}' must be lowercase letters, digits and hyphens`,
      );
    }
    this.repositoryPrefix = props.repositoryPrefix;
    this.encryptionKey = props.encryptionKey;
    this.repositoryArnPattern = `arn:${Aws.PARTITION}:ecr:${Aws.REGION}:${Aws.ACCOUNT_ID}:repository/${props.repositoryPrefix}/*`;
    this.registryHost = `${Aws.ACCOUNT_ID}.dkr.ecr.${Aws.REGION}.${Aws.URL_SUFFIX}`;

    new ecr.CfnRepositoryCreationTemplate(this, 'CreationTemplate', {
      prefix: props.repositoryPrefix,
      description: `Ferry registry ${props.repositoryPrefix}: repositories created on push`,
      appliedFor: ['CREATE_ON_PUSH'],
      imageTagMutability: IMAGE_TAG_MUTABILITY,
      encryptionConfiguration: { encryptionType: 'KMS', kmsKey: props.encryptionKey.keyArn },
      lifecyclePolicy: JSON.stringify(LIFECYCLE_POLICY),
      resourceTags: [{ key: 'ferry:registry', value: props.repositoryPrefix }],
    });
  }

  /** Pull from any repository of this tenant (plus the account-wide login token). */
  grantPull(grantee: iam.IGrantable): void {
    this.grantLogin(grantee);
    iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'ecr:BatchGetImage',
        'ecr:GetDownloadUrlForLayer',
        'ecr:BatchCheckLayerAvailability',
        'ecr:DescribeImages',
      ],
      resourceArns: [this.repositoryArnPattern],
    });
    this.encryptionKey.grantDecrypt(grantee);
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/${this.repositoryPrefix}/*]`,
      "Repositories are created per component at build time; the pattern covers this tenant's prefix only.",
    );
  }

  /** Push to (and create) repositories of this tenant; nothing outside its prefix. */
  grantPush(grantee: iam.IGrantable): void {
    this.grantPull(grantee);
    iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'ecr:CreateRepository',
        'ecr:DescribeRepositories',
        'ecr:InitiateLayerUpload',
        'ecr:UploadLayerPart',
        'ecr:CompleteLayerUpload',
        'ecr:PutImage',
        'ecr:TagResource',
      ],
      resourceArns: [this.repositoryArnPattern],
    });
    this.encryptionKey.grantEncryptDecrypt(grantee);
    acknowledgeKmsDataKeyGrant(grantee, 'Registry pushes');
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/${this.repositoryPrefix}/*]`,
      "Repositories are created per component at build time; the pattern covers this tenant's prefix only.",
    );
  }

  /**
   * Create repositories of this tenant with the tenant key (what the build workflow does before a
   * build pushes); nothing else.
   */
  grantCreateRepository(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['ecr:CreateRepository', 'ecr:TagResource'],
      resourceArns: [this.repositoryArnPattern],
    });
    // ECR creates a grant on the key for the repository's images, on the caller's behalf.
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:CreateGrant', 'kms:DescribeKey'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `ecr.${Aws.REGION}.amazonaws.com` } },
    });
    acknowledgeOnGrantee(
      grantee,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/${this.repositoryPrefix}/*]`,
      "Repositories are created per component at build time; the pattern covers this tenant's prefix only.",
    );
  }

  private grantLogin(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: ['ecr:GetAuthorizationToken'], resourceArns: ['*'] });
    acknowledgeOnGrantee(
      grantee,
      'AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken is account-wide and supports no resource-level permissions.',
    );
  }
}
