import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DeployRunner } from '../../../lib/deploy-runner';

type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
};
type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

interface Fixture {
  readonly app: App;
  readonly stack: Stack;
  readonly runner: DeployRunner;
  readonly template: Template;
  readonly resources: Resources;
  readonly ids: { key: string; bucket: string; project: string; runnerRole: string };
  /** Every statement of the policies attached to the role with this logical id. */
  statementsOf(roleId: string): Statement[];
}

/** A stack holding one runner, a workflow role granted start-and-wait and a Lambda role granted reads. */
function fixture(): Fixture {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Ferry-acme', { env: { account: '123456789012', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const runner = new DeployRunner(stack, 'DeployRunner', { encryptionKey: key });
  const workflow = new iam.Role(stack, 'WorkflowRole', {
    assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
  });
  const reader = new iam.Role(stack, 'ReaderRole', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  runner.grantStartBuildSync(workflow);
  runner.grantReadOutputs(reader);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;
  const idOf = (type: string, test: (props: Record<string, unknown>) => boolean = () => true) => {
    const found = Object.entries(resources).filter(
      ([, resource]) => resource.Type === type && test(resource.Properties ?? {}),
    );
    expect(found).toHaveLength(1);
    return found[0]![0];
  };
  const ids = {
    key: idOf('AWS::KMS::Key'),
    bucket: idOf('AWS::S3::Bucket'),
    project: idOf('AWS::CodeBuild::Project'),
    runnerRole: idOf('AWS::IAM::Role', (props) =>
      JSON.stringify(props.AssumeRolePolicyDocument).includes('codebuild.amazonaws.com'),
    ),
  };
  return {
    app,
    stack,
    runner,
    template,
    resources,
    ids,
    statementsOf(roleId) {
      return Object.values(resources)
        .filter(
          (resource) =>
            resource.Type === 'AWS::IAM::Policy' &&
            JSON.stringify(resource.Properties?.Roles).includes(`"${roleId}"`),
        )
        .flatMap((policy) => (policy.Properties!.PolicyDocument as { Statement: Statement[] }).Statement);
    },
  };
}

const actionsOf = (statement: Statement) =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];
const roleIdOf = (resources: Resources, service: string) =>
  Object.entries(resources).find(
    ([, resource]) =>
      resource.Type === 'AWS::IAM::Role' &&
      JSON.stringify(resource.Properties?.AssumeRolePolicyDocument).includes(service),
  )![0];

describe('DeployRunner', () => {
  const f = fixture();
  const bucketArn = { 'Fn::GetAtt': [f.ids.bucket, 'Arn'] };
  const outputsObjects = { 'Fn::Join': ['', [bucketArn, '/outputs/*']] };
  const inputsObjects = { 'Fn::Join': ['', [bucketArn, '/inputs/*']] };
  const keyArn = { 'Fn::GetAtt': [f.ids.key, 'Arn'] };

  it('runs a CodeBuild project on ARM64 with no source, the tenant key and its own log group', () => {
    f.template.hasResourceProperties('AWS::CodeBuild::Project', {
      Source: Match.objectLike({ Type: 'NO_SOURCE' }),
      Environment: Match.objectLike({
        Type: 'ARM_CONTAINER',
        Image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0',
        PrivilegedMode: false,
        EnvironmentVariables: [
          Match.objectLike({ Name: 'FERRY_TOOLS_S3_URI', Type: 'PLAINTEXT', Value: Match.anyValue() }),
        ],
      }),
      EncryptionKey: keyArn,
      TimeoutInMinutes: 60,
      LogsConfig: {
        CloudWatchLogs: Match.objectLike({ Status: 'ENABLED', GroupName: Match.anyValue() }),
      },
      ServiceRole: { 'Fn::GetAtt': [f.ids.runnerRole, 'Arn'] },
    });
    f.template.hasResourceProperties('AWS::Logs::LogGroup', {
      KmsKeyId: keyArn,
      RetentionInDays: 90,
    });
    expect(f.runner.defaultImage).toBe('aws/codebuild/amazonlinux-aarch64-standard:3.0');
  });

  it('fails a build started without a generated buildspec', () => {
    const project = f.resources[f.ids.project]!.Properties!;
    const buildspec = (project.Source as { BuildSpec: string }).BuildSpec;
    expect(buildspec).toContain('none was given');
    expect(buildspec).toContain('exit 1');
  });

  it('keeps outputs in a bucket encrypted with the tenant key, TLS only, private, expiring after a day', () => {
    f.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyArn },
            BucketKeyEnabled: true,
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            Id: 'ExpireOutputs',
            Status: 'Enabled',
            ExpirationInDays: 1,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          }),
        ],
      },
    });
    expect(f.resources[f.ids.bucket]!.Properties).not.toHaveProperty('VersioningConfiguration');
    f.template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
    f.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: f.ids.bucket },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('lets the runner role write only under outputs/ and read only under inputs/ of its bucket, through S3 with the tenant key', () => {
    const statements = f.statementsOf(f.ids.runnerRole);
    const onBucket = statements.filter((statement) =>
      JSON.stringify(statement.Resource).includes(f.ids.bucket),
    );
    expect(onBucket).toEqual([
      expect.objectContaining({ Effect: 'Allow', Action: 's3:PutObject', Resource: outputsObjects }),
      expect.objectContaining({ Effect: 'Allow', Action: 's3:GetObject', Resource: inputsObjects }),
    ]);
    const s3Actions = statements.flatMap(actionsOf).filter((action) => action.startsWith('s3:'));
    // Writing outputs, reading inputs and the packaging tool's one object: nothing else in S3.
    expect(s3Actions.sort()).toEqual(['s3:GetObject', 's3:GetObject', 's3:PutObject']);
    const toolRead = statements.find(
      (statement) =>
        actionsOf(statement).includes('s3:GetObject') &&
        !JSON.stringify(statement.Resource).includes(f.ids.bucket),
    )!;
    expect(JSON.stringify(toolRead.Resource)).not.toContain(f.ids.bucket);
    expect(JSON.stringify(toolRead.Resource)).not.toContain('*');
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Resource: keyArn,
        Condition: {
          StringEquals: {
            'kms:ViaService': 's3.eu-west-1.amazonaws.com',
            'kms:EncryptionContext:aws:s3:arn': bucketArn,
          },
        },
      }),
    );
  });

  it('grants startBuild.sync exactly: this project, and the managed events rule', () => {
    const statements = f.statementsOf(roleIdOf(f.resources, 'states.amazonaws.com'));
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: ['codebuild:StartBuild', 'codebuild:StopBuild', 'codebuild:BatchGetBuilds'],
        Resource: { 'Fn::GetAtt': [f.ids.project, 'Arn'] },
      },
      {
        Effect: 'Allow',
        Action: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':events:eu-west-1:123456789012:rule/StepFunctionsGetEventsForCodeBuildStartBuildRule',
            ],
          ],
        },
      },
    ]);
  });

  it('grants reading outputs exactly: get and delete under outputs/, list the bucket, decrypt through S3', () => {
    const statements = f.statementsOf(roleIdOf(f.resources, 'lambda.amazonaws.com'));
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:DeleteObject'], Resource: outputsObjects },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn },
      {
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: keyArn,
        Condition: {
          StringEquals: {
            'kms:ViaService': 's3.eu-west-1.amazonaws.com',
            'kms:EncryptionContext:aws:s3:arn': bucketArn,
          },
        },
      },
    ]);
  });

  it('leaves no cdk-nag finding unacknowledged', () => {
    expect(() => f.app.synth()).not.toThrow();
  });

  it('refuses a timeout or an outputs expiration out of range, naming the prop', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'S');
    const encryptionKey = new kms.Key(stack, 'Key');
    expect(() => new DeployRunner(stack, 'Short', { encryptionKey, timeout: Duration.minutes(2) })).toThrow(
      'DeployRunner Short: timeout must be between 5 and 480 minutes, got 2',
    );
    expect(
      () => new DeployRunner(stack, 'Long', { encryptionKey, outputsExpiration: Duration.days(90) }),
    ).toThrow('DeployRunner Long: outputsExpiration must be between 1 and 30 days');
  });
});
