import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { createRepositoryInput } from '../../../lambda/shared/registry-settings';
import { synthesize } from '../../support/synth';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

describe('tenant stack', () => {
  const synthesized = synthesize(['acme']);
  const template: Template = synthesized.template('acme');
  const resources = template.toJSON().Resources as Resources;
  const ofType = (type: string) => Object.entries(resources).filter(([, resource]) => resource.Type === type);

  it('is named Ferry-<tenant> and tagged with the tenant', () => {
    expect(synthesized.stacks[0].stackName).toBe('Ferry-acme');
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      Tags: Match.arrayWith([{ Key: 'ferry:tenant', Value: 'acme' }]),
    });
  });

  it('has a rotated tenant key with an alias naming the tenant', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/ferry/acme' });
  });

  it('encrypts the state table with the tenant key and keeps point-in-time recovery', () => {
    const [keyId] = ofType('AWS::KMS::Key')[0];
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: {
        SSEEnabled: true,
        SSEType: 'KMS',
        KMSMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      DeletionProtectionEnabled: true,
      GlobalSecondaryIndexes: [
        Match.objectLike({ IndexName: 'gsi1', Projection: { ProjectionType: 'ALL' } }),
      ],
    });
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
  });

  it('gives repositories under the tenant prefix immutable tags, the tenant key and a lifecycle', () => {
    template.hasResourceProperties('AWS::ECR::RepositoryCreationTemplate', {
      Prefix: 'ferry-acme',
      AppliedFor: ['CREATE_ON_PUSH'],
      ImageTagMutability: 'IMMUTABLE',
      EncryptionConfiguration: { EncryptionType: 'KMS', KmsKey: Match.anyValue() },
      LifecyclePolicy: Match.stringLikeRegexp('untagged'),
    });
  });

  it('runs the build agent on ARM64, encrypted, logging to its own log group, without privileged mode', () => {
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      Environment: Match.objectLike({ Type: 'ARM_CONTAINER', PrivilegedMode: false }),
      EncryptionKey: Match.anyValue(),
      LogsConfig: { CloudWatchLogs: Match.objectLike({ Status: 'ENABLED', GroupName: Match.anyValue() }) },
    });
  });

  it('lets the build agent push only to the tenant registry prefix', () => {
    const [roleId] = ofType('AWS::IAM::Role').find(([, role]) =>
      JSON.stringify(role.Properties?.AssumeRolePolicyDocument).includes('codebuild.amazonaws.com'),
    )!;
    const policies = ofType('AWS::IAM::Policy').filter(([, policy]) =>
      JSON.stringify(policy.Properties?.Roles).includes(roleId),
    );
    const statements = policies.flatMap(
      ([, policy]) =>
        (
          policy.Properties!.PolicyDocument as {
            Statement: { Action: string | string[]; Resource: unknown }[];
          }
        ).Statement,
    );
    const push = statements.find((statement) =>
      ([] as string[]).concat(statement.Action).includes('ecr:PutImage'),
    );
    expect(JSON.stringify(push?.Resource)).toContain(':repository/ferry-acme/*');
  });

  it('requires IAM auth on every API method', () => {
    const methods = ofType('AWS::ApiGateway::Method');
    expect(methods.length).toBeGreaterThan(0);
    for (const [id, method] of methods) {
      const authorization = method.Properties?.AuthorizationType;
      // OPTIONS preflight is the only kind of method allowed without auth, and there is none yet.
      expect({ id, authorization }).toEqual({ id, authorization: 'AWS_IAM' });
    }
  });

  it('logs API access as JSON, traces and throttles the stage', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          ThrottlingRateLimit: 50,
          ThrottlingBurstLimit: 100,
          HttpMethod: '*',
          ResourcePath: '/*',
        }),
      ]),
    });
  });

  it('inlines the self-check definition from stepfunctions/ with logging and tracing on', () => {
    const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0];
    const properties = machine.Properties as Record<string, unknown>;
    expect(properties.DefinitionS3Location).toBeUndefined();
    expect(JSON.stringify(properties.DefinitionString)).toContain('CheckStateTable');
    expect(properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(properties.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
    expect(properties.DefinitionSubstitutions).toEqual({
      SelfCheckFunctionArn: { 'Fn::GetAtt': [expect.stringMatching(/^SelfCheckFunction/), 'Arn'] },
    });
  });

  it('grants the state machine invoke on its functions only', () => {
    const [machineId, machine] = ofType('AWS::StepFunctions::StateMachine')[0];
    const roleId = (machine.Properties!.RoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
    const invoke = ofType('AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties?.Roles).includes(roleId))
      .flatMap(
        ([, policy]) =>
          (policy.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      )
      .filter((statement) => JSON.stringify(statement.Action).includes('lambda:InvokeFunction'));
    expect(machineId).toBeDefined();
    expect(invoke).toHaveLength(1);
    expect(JSON.stringify(invoke[0].Resource)).toMatch(/SelfCheckFunction/);
    expect(JSON.stringify(invoke[0].Resource)).not.toMatch(/ApiFunction/);
  });

  it('runs every function on Node.js 24, ARM64, with active tracing and its own log group', () => {
    const functions = ofType('AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThanOrEqual(2);
    for (const [, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON', LogGroup: expect.anything() },
        Environment: { Variables: expect.objectContaining({ POWERTOOLS_SERVICE_NAME: expect.any(String) }) },
      });
    }
  });

  it('gives every log group a retention and the tenant key', () => {
    const groups = ofType('AWS::Logs::LogGroup');
    expect(groups.length).toBeGreaterThanOrEqual(5);
    for (const [, group] of groups) {
      expect(group.Properties).toMatchObject({ RetentionInDays: 90, KmsKeyId: expect.anything() });
    }
  });

  it('archives every event on the tenant bus', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 30 });
  });

  it('lets the API seal sensitive inputs with the tenant key but never decrypt them', () => {
    const apiRoles = ofType('AWS::IAM::Role').filter(([id]) => id.startsWith('ApiFunctionRole'));
    expect(apiRoles).toHaveLength(1);
    const statements = ofType('AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties?.Roles).includes(apiRoles[0][0]))
      .flatMap(
        ([, policy]) => (policy.Properties!.PolicyDocument as { Statement: { Action: unknown }[] }).Statement,
      );
    const actions = statements.flatMap((statement) => ([] as unknown[]).concat(statement.Action));
    expect(actions).toContain('kms:Encrypt');
    expect(actions).not.toContain('dynamodb:Scan');
    // Decrypt is granted only through DynamoDB (the table's own encryption), never directly.
    const decrypting = statements.filter((s) => JSON.stringify(s.Action).includes('kms:Decrypt'));
    expect(decrypting).toHaveLength(1);
    for (const statement of decrypting) {
      expect(statement).toMatchObject({
        Condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['dynamodb.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
          },
        },
      });
    }
  });

  it('inlines the build definition, running CodeBuild with .sync and the project it names', () => {
    const [, machine] = ofType('AWS::StepFunctions::StateMachine').find(([id]) =>
      id.startsWith('BuildStateMachine'),
    )!;
    const properties = machine.Properties as Record<string, unknown>;
    expect(JSON.stringify(properties.DefinitionString)).toContain(
      'arn:aws:states:::codebuild:startBuild.sync',
    );
    expect(properties.DefinitionSubstitutions).toEqual({
      BuildProjectName: { Ref: expect.stringMatching(/^BuildAgentProject/) },
      BuildStepsFunctionArn: { 'Fn::GetAtt': [expect.stringMatching(/^BuildStepsFunction/), 'Arn'] },
    });
    const roleId = (properties.RoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
    const statements = ofType('AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties?.Roles).includes(roleId))
      .flatMap(
        ([, policy]) =>
          (policy.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      );
    const codebuild = statements.find((statement) =>
      JSON.stringify(statement.Action).includes('codebuild:StartBuild'),
    );
    expect(codebuild?.Action).toEqual([
      'codebuild:StartBuild',
      'codebuild:StopBuild',
      'codebuild:BatchGetBuilds',
    ]);
    expect(codebuild?.Resource).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^BuildAgentProject/), 'Arn'],
    });
  });

  /** The statements of every policy attached to the role whose logical id starts with `prefix`. */
  const statementsOf = (prefix: string) => {
    const role = ofType('AWS::IAM::Role').find(([id]) => id.startsWith(prefix))![0];
    return ofType('AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties?.Roles).includes(role))
      .flatMap(
        ([, policy]) =>
          (policy.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      );
  };
  const statesStatements = (prefix: string) =>
    statementsOf(prefix).filter((statement) => JSON.stringify(statement.Action).includes('states:'));
  const arnNamed = (kind: string, name: string) => ({
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:states:eu-west-1:123456789012:${kind}:${name}`]],
  });

  it('lets deploys open and seal only install-bound secrets with the tenant key', () => {
    const kms = statementsOf('DeployStepsFunctionRole').filter(
      (statement) => JSON.stringify(statement.Action) === JSON.stringify(['kms:Encrypt', 'kms:Decrypt']),
    );
    expect(kms).toEqual([
      expect.objectContaining({
        Condition: { 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': ['installId'] } },
      }),
    ]);
  });

  it('lets the API start the build, release and teardown workflows and no other', () => {
    const start = statesStatements('ApiFunctionRole');
    expect(start.map((statement) => statement.Action)).toEqual([
      'states:StartExecution',
      'states:StartExecution',
      'states:StartExecution',
    ]);
    expect(start.map((statement) => JSON.stringify(statement.Resource)).sort()).toEqual([
      expect.stringMatching(/"BuildStateMachine/),
      expect.stringMatching(/"ReleaseStateMachine/),
      expect.stringMatching(/"TeardownInstallStateMachine/),
    ]);
  });

  it("lets the release steps start and look up only this tenant's deploys, and wake only its releases", () => {
    expect(statesStatements('ReleaseStepsFunctionRole')).toEqual([
      {
        Effect: 'Allow',
        Action: 'states:StartExecution',
        Resource: arnNamed('stateMachine', 'ferry-acme-deploy-install'),
      },
      {
        Effect: 'Allow',
        Action: 'states:DescribeExecution',
        Resource: arnNamed('execution', 'ferry-acme-deploy-install:*'),
      },
      {
        Effect: 'Allow',
        Action: 'states:SendTaskSuccess',
        Resource: arnNamed('stateMachine', 'ferry-acme-release'),
      },
    ]);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: 'ferry-acme-release',
    });
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: 'ferry-acme-deploy-install',
    });
    // The release workflow may start only itself (continue as new) besides invoking its function.
    expect(statesStatements('ReleaseStateMachineRole')).toEqual([
      {
        Effect: 'Allow',
        Action: 'states:StartExecution',
        Resource: arnNamed('stateMachine', 'ferry-acme-release'),
      },
    ]);
  });

  it("lets only the sync and deploy tasks, the deploy runner and the API (to verify) assume installs' roles, and only this tenant's", () => {
    const assuming = ofType('AWS::IAM::Policy').flatMap(([, policy]) =>
      (
        policy.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }
      ).Statement.filter((statement) => JSON.stringify(statement.Action).includes('sts:AssumeRole')).map(
        (statement) => ({ roles: JSON.stringify(policy.Properties?.Roles), statement }),
      ),
    );
    expect(assuming.map((grant) => grant.roles.match(/"(\w+?)Role[0-9A-F]{8}"/)?.[1]).sort()).toEqual([
      'ApiFunction',
      'DeployRunner',
      'DeployStepsFunction',
      'SyncStepsFunction',
    ]);
    for (const grant of assuming) {
      expect(JSON.stringify(grant.statement.Resource)).toContain(':iam::*:role/ferry.acme.*');
    }
  });

  it('attaches no AWS managed policies to any role', () => {
    for (const [, role] of ofType('AWS::IAM::Role')) {
      expect(role.Properties?.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe('cdk-nag', () => {
  it('finds nothing unacknowledged in a synthesized tenant', () => {
    const { app } = synthesize(['acme', 'globex']);
    expect(() => app.synth()).not.toThrow();
  });

  it('fails the synth on a finding nobody acknowledged', () => {
    const { app, stacks } = synthesize(['acme']);
    new iam.Role(stacks[0], 'Careless', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: {
        all: new iam.PolicyDocument({
          statements: [new iam.PolicyStatement({ actions: ['s3:*'], resources: ['*'] })],
        }),
      },
    });
    expect(() => app.synth()).toThrow(/Careless[\s\S]*AwsSolutions-IAM5\[Action::s3:\*\]/);
  });
});

describe('repository settings', () => {
  it('creates every repository with immutable tags, scan on push and the tenant key', () => {
    expect(createRepositoryInput('ferry-acme/app/api', 'arn:aws:kms:eu-west-1:123456789012:key/k')).toEqual({
      repositoryName: 'ferry-acme/app/api',
      imageTagMutability: 'IMMUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'arn:aws:kms:eu-west-1:123456789012:key/k' },
    });
  });
});
