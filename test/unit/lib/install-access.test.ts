import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { stateBucketName } from '../../../lambda/shared/install-role';
import { synthesizeAccessTemplate } from '../../../lib/access-template';
import { InstallAccessStack } from '../../../lib/install-access-stack';

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = Record<string, unknown>;

describe('install access template', () => {
  const json = synthesizeAccessTemplate({ tenant: 'acme' });
  const template = Template.fromJSON(json);
  const resources = json.Resources as Record<string, Resource>;
  const ofType = (type: string) => Object.entries(resources).filter(([, resource]) => resource.Type === type);
  const [[roleId, role]] = ofType('AWS::IAM::Role').filter(([, candidate]) =>
    JSON.stringify(candidate.Properties.AssumeRolePolicyDocument).includes('sts:ExternalId'),
  );
  const [[bucketId]] = ofType('AWS::S3::Bucket');
  const inlineStatements = () => {
    const policies = role.Properties.Policies as { PolicyDocument: { Statement: Statement[] } }[];
    return policies.flatMap((policy) => policy.PolicyDocument.Statement);
  };

  it('takes every install-specific value as a parameter', () => {
    template.hasParameter('TrustedRoleArns', { Type: 'CommaDelimitedList' });
    template.hasParameter('ExternalId', { Type: 'String', NoEcho: true, MinLength: 2 });
    template.hasParameter('InstallId', { Type: 'String' });
    template.hasParameter('RepositoryPrefix', { Type: 'String', Default: 'ferry' });
    template.hasParameter('PermissionsBoundaryArn', { Type: 'String', Default: '' });
  });

  it('needs no CDK bootstrap in the customer account and names no account', () => {
    expect(json.Parameters).not.toHaveProperty('BootstrapVersion');
    expect(json).not.toHaveProperty('Rules');
    expect(ofType('AWS::CDK::Metadata')).toHaveLength(0);
    expect(JSON.stringify(json)).not.toMatch(/\d{12}/);
  });

  it('creates the access role, a task execution role and one state bucket', () => {
    expect(ofType('AWS::IAM::Role')).toHaveLength(2);
    expect(ofType('AWS::S3::Bucket')).toHaveLength(1);
    expect(ofType('AWS::DynamoDB::Table')).toHaveLength(0);
  });

  it("gives the install's ECS tasks an execution role under /ferry/ that only ECS tasks assume", () => {
    const [[, execution]] = ofType('AWS::IAM::Role').filter(([id]) => id !== roleId);
    expect(execution.Properties).toMatchObject({
      Path: '/ferry/',
      RoleName: { 'Fn::Join': ['', ['ferry.acme.', { Ref: 'InstallId' }, '.exec']] },
      AssumeRolePolicyDocument: {
        Statement: [
          { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' } },
        ],
      },
    });
    expect(json.Outputs).toHaveProperty('TaskExecutionRoleArn');
  });

  it('names the role ferry.<tenant>.<InstallId>', () => {
    expect(role.Properties.RoleName).toEqual({ 'Fn::Join': ['', ['ferry.acme.', { Ref: 'InstallId' }]] });
    expect(role.Properties.MaxSessionDuration).toBe(3600);
  });

  it('lets only the trusted roles assume the role, and only with the ExternalId', () => {
    const trust = role.Properties.AssumeRolePolicyDocument as { Statement: Statement[] };
    expect(trust.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Principal: { AWS: { Ref: 'TrustedRoleArns' } },
        Condition: { StringEquals: { 'sts:ExternalId': { Ref: 'ExternalId' } } },
      },
    ]);
    const text = JSON.stringify(trust);
    expect(text).not.toContain('"*"');
    expect(text).not.toContain(':root');
    expect(text).not.toContain('AWS::AccountId');
    expect(text).not.toContain('Service');
    expect(text).not.toContain('Federated');
  });

  it('applies the permissions boundary only when one is given', () => {
    template.hasCondition('HasPermissionsBoundary', {
      'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'PermissionsBoundaryArn' }, ''] }],
    });
    expect(role.Properties.PermissionsBoundary).toEqual({
      'Fn::If': ['HasPermissionsBoundary', { Ref: 'PermissionsBoundaryArn' }, { Ref: 'AWS::NoValue' }],
    });
  });

  it('scopes every ECR action but the login to repositories under the prefix', () => {
    const ecr = inlineStatements().filter((statement) => JSON.stringify(statement.Action).includes('ecr:'));
    const login = ecr.find((statement) => statement.Action === 'ecr:GetAuthorizationToken');
    expect(login).toMatchObject({ Effect: 'Allow', Resource: '*' });
    const repositories = ecr.filter((statement) => statement !== login);
    expect(repositories).toHaveLength(1);
    expect(repositories[0].Action).toEqual(
      expect.arrayContaining([
        'ecr:CreateRepository',
        'ecr:PutImage',
        'ecr:BatchGetImage',
        'ecr:TagResource',
      ]),
    );
    expect(repositories[0].Resource).toEqual({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':ecr:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          ':repository/',
          { Ref: 'RepositoryPrefix' },
          '/*',
        ],
      ],
    });
  });

  it('grants state access to the state bucket only', () => {
    const s3 = inlineStatements().filter((statement) => JSON.stringify(statement.Action).includes('s3:'));
    expect(s3).toEqual([
      expect.objectContaining({ Action: 's3:ListBucket', Resource: { 'Fn::GetAtt': [bucketId, 'Arn'] } }),
      expect.objectContaining({
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] },
      }),
    ]);
  });

  it('allows a wildcard resource only for actions that have no narrower one', () => {
    const wildcards = inlineStatements().filter((statement) => statement.Resource === '*');
    expect(wildcards.flatMap((statement) => statement.Action)).toEqual([
      'ecr:GetAuthorizationToken',
      'ecs:RegisterTaskDefinition',
      'ecs:DescribeTaskDefinition',
      'ecs:ListTaskDefinitions',
      'ecs:DeregisterTaskDefinition',
    ]);
  });

  it('passes only /ferry/ roles, and only to ECS tasks', () => {
    const passRole = inlineStatements().find((statement) => statement.Action === 'iam:PassRole');
    expect(passRole).toMatchObject({
      Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    });
    expect(JSON.stringify(passRole?.Resource)).toContain(':role/ferry/*');
  });

  it('keeps the state encrypted, versioned, private and expiring old versions', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 90 } }),
        ]),
      },
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
  });

  it('refuses every request to the state bucket that is not over TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('outputs what the IMS reads back, and how state is locked', () => {
    template.hasOutput('RoleArn', { Value: { 'Fn::GetAtt': [roleId, 'Arn'] } });
    template.hasOutput('StateBucketName', { Value: { Ref: bucketId } });
    template.hasOutput('RepositoryPrefix', { Value: { Ref: 'RepositoryPrefix' } });
    template.hasOutput('InstallId', { Value: { Ref: 'InstallId' } });
    template.hasOutput('StateLocking', {
      Value: 'use_lockfile',
      Description: Match.stringLikeRegexp('Terraform >= 1.10'),
    });
  });

  it('records the tenant it was synthesized for', () => {
    expect(json.Metadata).toMatchObject({ Ferry: { tenant: 'acme' } });
  });

  it('refuses an invalid tenant name', () => {
    expect(() => new InstallAccessStack(new App(), 'Bad', { tenant: 'Acme.Corp' })).toThrow(
      /InstallAccessStack tenant/,
    );
  });

  it('keeps the role name within 64 characters for the longest tenant', () => {
    const long = synthesizeAccessTemplate({ tenant: 'abcdefghijklmnopqrst' });
    const installId = (long.Parameters as Record<string, { MaxLength: number }>).InstallId;
    expect('ferry.abcdefghijklmnopqrst.'.length + installId.MaxLength).toBe(64);
  });
});

describe('the Terraform state bucket name', () => {
  it('is the one the IMS computes from the install id', () => {
    const json = synthesizeAccessTemplate({ tenant: 'acme' });
    const bucket = Object.values(json.Resources as Record<string, Resource>).find(
      (resource) => resource.Type === 'AWS::S3::Bucket',
    )!;
    expect(bucket.Properties.BucketName).toEqual({
      'Fn::Join': [
        '-',
        ['ferry-acme', { 'Fn::Select': [1, { 'Fn::Split': ['_', { Ref: 'InstallId' }] }] }, 'tfstate'],
      ],
    });
    expect(stateBucketName('acme', 'inst_01jz5m3k8q2v7w9x0y1z2a3b4c')).toBe(
      'ferry-acme-01jz5m3k8q2v7w9x0y1z2a3b4c-tfstate',
    );
    expect(stateBucketName('a'.repeat(20), 'inst_01jz5m3k8q2v7w9x0y1z2a3b4c').length).toBeLessThanOrEqual(63);
  });
});
