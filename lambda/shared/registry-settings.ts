/**
 * The settings every repository in a tenant registry gets, whoever creates it: the CDK creation
 * template (repositories ECR creates on push) and the runtime code that creates repositories before
 * a push both read them from here.
 */

/** Tags never move once pushed: a tag names one digest forever. */
export const IMAGE_TAG_MUTABILITY = 'IMMUTABLE' as const;

/** Every pushed image is scanned for vulnerabilities. */
export const SCAN_ON_PUSH = true;

/** Untagged manifests (superseded indexes, failed pushes) are expired after this many days. */
export const UNTAGGED_EXPIRY_DAYS = 14;

export const LIFECYCLE_POLICY = {
  rules: [
    {
      rulePriority: 1,
      description: `Expire untagged images after ${UNTAGGED_EXPIRY_DAYS} days`,
      selection: {
        tagStatus: 'untagged',
        countType: 'sinceImagePushed',
        countUnit: 'days',
        countNumber: UNTAGGED_EXPIRY_DAYS,
      },
      action: { type: 'expire' },
    },
  ],
};

/**
 * The CreateRepository input for a Ferry repository (ECR API shape): the tenant key in the
 * tenant registry; in an install's account, the account's AWS-managed ECR key.
 */
export function createRepositoryInput(repositoryName: string, kmsKeyArn?: string) {
  return {
    repositoryName,
    imageTagMutability: IMAGE_TAG_MUTABILITY,
    imageScanningConfiguration: { scanOnPush: SCAN_ON_PUSH },
    encryptionConfiguration: { encryptionType: 'KMS' as const, ...(kmsKeyArn && { kmsKey: kmsKeyArn }) },
  };
}
