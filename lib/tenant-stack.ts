import {
  ArnFormat,
  Aws,
  CfnOutput,
  Duration,
  type RemovalPolicy,
  Stack,
  type StackProps,
  Tags,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { installRoleName } from '../lambda/shared/install-role';
import { synthesizeAccessTemplate } from './access-template';
import { Api } from './api';
import { BuildAgent } from './build-agent';
import { DeployRunner } from './deploy-runner';
import { FerryFunction } from './ferry-function';
import { acknowledgeOnGrantee, nagEnvOf } from './nag';
import { Registry } from './registry';
import { StateTable } from './state-table';
import { repositoryPrefixFor, validateTenantName } from './tenant-config';
import { TenantKey } from './tenant-key';
import { Triggers } from './triggers';
import { Workflow } from './workflow';

export interface TenantStackProps extends StackProps {
  /** The tenant this IMS serves; see TENANT_NAME_PATTERN. */
  readonly tenant: string;
  /** How long every log group keeps events. @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to stateful resources (key, table, logs) on stack deletion. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** One tenant's infrastructure management server: composes the parts, holds no logic of its own. */
export class TenantStack extends Stack {
  public readonly tenant: string;
  public readonly stateTable: StateTable;
  public readonly registry: Registry;
  public readonly buildAgent: BuildAgent;
  public readonly deployRunner: DeployRunner;
  public readonly api: Api;
  public readonly triggers: Triggers;
  public readonly selfCheck: Workflow;
  public readonly build: Workflow;
  public readonly sync: Workflow;
  public readonly deployInstall: Workflow;
  public readonly release: Workflow;
  public readonly teardownInstall: Workflow;
  public readonly installAccessPrincipals: readonly iam.IRole[];

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    this.tenant = validateTenantName(props.tenant, 'TenantStack tenant');
    Tags.of(this).add('ferry:tenant', this.tenant);
    const common = { logRetention: props.logRetention, removalPolicy: props.removalPolicy };

    const key = new TenantKey(this, 'Key', { tenant: this.tenant, removalPolicy: props.removalPolicy }).key;
    this.stateTable = new StateTable(this, 'State', {
      encryptionKey: key,
      removalPolicy: props.removalPolicy,
    });
    this.registry = new Registry(this, 'Registry', {
      repositoryPrefix: repositoryPrefixFor(this.tenant),
      encryptionKey: key,
    });
    this.buildAgent = new BuildAgent(this, 'BuildAgent', {
      registry: this.registry,
      encryptionKey: key,
      ...common,
    });
    this.triggers = new Triggers(this, 'Triggers', { encryptionKey: key });

    const environment = { FERRY_TENANT: this.tenant, STATE_TABLE: this.stateTable.table.tableName };
    const apiFunction = new FerryFunction(this, 'ApiFunction', {
      entry: 'api/handler.ts',
      serviceName: 'ferry-api',
      encryptionKey: key,
      environment,
      // The customer-side template is too big for an environment variable: inline it.
      define: {
        FERRY_ACCESS_TEMPLATE: JSON.stringify(
          JSON.stringify(synthesizeAccessTemplate({ tenant: this.tenant })),
        ),
      },
      ...common,
    });
    this.stateTable.grantReadWrite(apiFunction.function);
    this.api = new Api(this, 'Api', { handler: apiFunction.function, encryptionKey: key, ...common });
    // The API seals sensitive install inputs; it never needs to read them back.
    apiFunction.function.addEnvironment('TENANT_KEY_ARN', key.keyArn);
    apiFunction.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['kms:Encrypt'], resources: [key.keyArn] }),
    );

    const selfCheckFunction = new FerryFunction(this, 'SelfCheckFunction', {
      entry: 'self-check/handler.ts',
      serviceName: 'ferry-self-check',
      encryptionKey: key,
      environment,
      ...common,
    });
    this.stateTable.grantReadWrite(selfCheckFunction.function);
    this.selfCheck = new Workflow(this, 'SelfCheck', {
      definitionName: 'self-check',
      functions: { SelfCheckFunctionArn: selfCheckFunction.function },
      encryptionKey: key,
      ...common,
    });

    // The build workflow: prepare (Lambda) -> CodeBuild with a generated buildspec (.sync) -> record.
    const buildStepsFunction = new FerryFunction(this, 'BuildStepsFunction', {
      entry: 'build/handler.ts',
      serviceName: 'ferry-build',
      encryptionKey: key,
      environment: {
        ...environment,
        REGISTRY_HOST: this.registry.registryHost,
        REGISTRY_PREFIX: this.registry.repositoryPrefix,
        TENANT_KEY_ARN: key.keyArn,
        BUILD_IMAGE: this.buildAgent.defaultImage,
        TOOLS_S3_URI: this.buildAgent.toolsS3Uri,
      },
      ...common,
    });
    this.stateTable.grantReadWrite(buildStepsFunction.function);
    this.registry.grantCreateRepository(buildStepsFunction.function);
    this.build = new Workflow(this, 'Build', {
      definitionName: 'build',
      functions: { BuildStepsFunctionArn: buildStepsFunction.function },
      substitutions: { BuildProjectName: this.buildAgent.project.projectName },
      encryptionKey: key,
      timeout: Duration.hours(2),
      ...common,
    });
    this.buildAgent.grantStartBuildSync(this.build.stateMachine);
    apiFunction.function.addEnvironment('BUILD_STATE_MACHINE_ARN', this.build.stateMachine.stateMachineArn);
    this.build.stateMachine.grantStartExecution(apiFunction.function);

    // The tasks that reach installs' accounts: the tenant state, pulls from the tenant registry,
    // and this tenant's install roles; nothing else.
    const installTask = (id: string, entry: string, serviceName: string) => {
      const task = new FerryFunction(this, id, {
        entry,
        serviceName,
        encryptionKey: key,
        timeout: Duration.minutes(15),
        memorySize: 1024,
        environment: {
          ...environment,
          REGISTRY_HOST: this.registry.registryHost,
          INSTALL_REPOSITORY_PREFIX: 'ferry',
        },
        ...common,
      });
      this.stateTable.grantReadWrite(task.function);
      this.registry.grantPull(task.function);
      grantAssumeInstallRoles(task.function, this.tenant);
      return task;
    };

    // The sync workflow: copy a build's artifact into an install's registry through its role.
    const syncStepsFunction = installTask('SyncStepsFunction', 'sync/handler.ts', 'ferry-sync');
    this.sync = new Workflow(this, 'Sync', {
      definitionName: 'sync',
      functions: { SyncStepsFunctionArn: syncStepsFunction.function },
      encryptionKey: key,
      timeout: Duration.hours(2),
      ...common,
    });
    // The deploy-install and release workflows call each other (a release starts deploys, a deploy
    // reports to its release), so their ARNs are built from fixed names rather than referenced.
    const names = {
      deployInstall: `ferry-${this.tenant}-deploy-install`,
      release: `ferry-${this.tenant}-release`,
    };
    const arnOf = (resource: 'stateMachine' | 'execution', name: string) =>
      this.formatArn({
        service: 'states',
        resource,
        resourceName: name,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    const releaseStepsFunction = new FerryFunction(this, 'ReleaseStepsFunction', {
      entry: 'release/handler.ts',
      serviceName: 'ferry-release',
      encryptionKey: key,
      // A wave may start thousands of deploys.
      timeout: Duration.minutes(15),
      environment: {
        ...environment,
        DEPLOY_INSTALL_STATE_MACHINE_ARN: arnOf('stateMachine', names.deployInstall),
      },
      ...common,
    });
    this.stateTable.grantReadWrite(releaseStepsFunction.function);
    releaseStepsFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:StartExecution'],
        resources: [arnOf('stateMachine', names.deployInstall)],
      }),
    );
    releaseStepsFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution'],
        resources: [arnOf('execution', `${names.deployInstall}:*`)],
      }),
    );
    releaseStepsFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:SendTaskSuccess'],
        resources: [arnOf('stateMachine', names.release)],
      }),
    );
    acknowledgeOnGrantee(
      releaseStepsFunction.function,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:${nagEnvOf(this).region}:${nagEnvOf(this).account}:execution:${names.deployInstall}:*]`,
      "Looks up the deploy-install executions a release started (named per release and install) when a wave's time runs out.",
    );

    // The deploy runner: helm, Terraform and plugins, applied by CodeBuild through the install's role.
    this.deployRunner = new DeployRunner(this, 'DeployRunner', { encryptionKey: key, ...common });
    grantAssumeInstallRoles(this.deployRunner.role, this.tenant);

    // The deploy-install workflow: lock, deploy the component graph level by level, unlock, report.
    const deployStepsFunction = installTask('DeployStepsFunction', 'deploy/handler.ts', 'ferry-deploy');
    deployStepsFunction.function.addEnvironment(
      'DEPLOY_RUNNER_BUCKET',
      this.deployRunner.outputsBucket.bucketName,
    );
    deployStepsFunction.function.addEnvironment('DEPLOY_RUNNER_IMAGE', this.deployRunner.defaultImage);
    this.deployRunner.grantWriteInputs(deployStepsFunction.function);
    // Deploys open installs' sensitive inputs and seal sensitive outputs for dependants: only
    // ciphertexts bound to an install (the encryption context names it).
    deployStepsFunction.function.addEnvironment('TENANT_KEY_ARN', key.keyArn);
    deployStepsFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Encrypt', 'kms:Decrypt'],
        resources: [key.keyArn],
        conditions: { 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': ['installId'] } },
      }),
    );
    this.deployRunner.grantReadOutputs(deployStepsFunction.function);
    this.deployInstall = new Workflow(this, 'DeployInstall', {
      definitionName: 'deploy-install',
      stateMachineName: names.deployInstall,
      functions: {
        DeployStepsFunctionArn: deployStepsFunction.function,
        ReleaseStepsFunctionArn: releaseStepsFunction.function,
      },
      substitutions: { DeployRunnerProjectName: this.deployRunner.project.projectName },
      encryptionKey: key,
      timeout: Duration.hours(3),
      ...common,
    });

    this.deployRunner.grantStartBuildSync(this.deployInstall.stateMachine);

    // The teardown-install workflow: the install's components removed in reverse order, then the install.
    this.teardownInstall = new Workflow(this, 'TeardownInstall', {
      definitionName: 'teardown-install',
      functions: { DeployStepsFunctionArn: deployStepsFunction.function },
      substitutions: { DeployRunnerProjectName: this.deployRunner.project.projectName },
      encryptionKey: key,
      timeout: Duration.hours(3),
      ...common,
    });
    this.deployRunner.grantStartBuildSync(this.teardownInstall.stateMachine);
    apiFunction.function.addEnvironment(
      'TEARDOWN_STATE_MACHINE_ARN',
      this.teardownInstall.stateMachine.stateMachineArn,
    );
    this.teardownInstall.stateMachine.grantStartExecution(apiFunction.function);

    // The release workflow: waves of deploy-install executions, one task token per wave.
    this.release = new Workflow(this, 'Release', {
      definitionName: 'release',
      stateMachineName: names.release,
      functions: { ReleaseStepsFunctionArn: releaseStepsFunction.function },
      encryptionKey: key,
      // Step Functions' own limit: pauses between waves may be long.
      timeout: Duration.days(365),
      ...common,
    });
    // "Continue as new": a long release hands over to a fresh execution of itself.
    this.release.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:StartExecution'],
        resources: [arnOf('stateMachine', names.release)],
      }),
    );
    apiFunction.function.addEnvironment(
      'RELEASE_STATE_MACHINE_ARN',
      this.release.stateMachine.stateMachineArn,
    );
    this.release.stateMachine.grantStartExecution(apiFunction.function);

    /** The roles an install's access role must trust: the tasks that assume it. */
    this.installAccessPrincipals = [
      syncStepsFunction.role,
      deployStepsFunction.role,
      this.deployRunner.role,
      apiFunction.role,
    ];
    apiFunction.function.addEnvironment(
      'INSTALL_ACCESS_ROLE_ARNS',
      this.installAccessPrincipals.map((role) => role.roleArn).join(','),
    );
    // The API assumes an install's role only to verify it (POST /v1/installs/{id}/verify).
    grantAssumeInstallRoles(apiFunction.function, this.tenant);

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.restApi.url,
      description: 'Base URL of the IMS API (SigV4)',
    });
    new CfnOutput(this, 'StateTableName', { value: this.stateTable.table.tableName });
    new CfnOutput(this, 'RegistryPrefix', { value: this.registry.repositoryPrefix });
    new CfnOutput(this, 'SelfCheckStateMachineArn', {
      value: this.selfCheck.stateMachine.stateMachineArn,
      description: 'Start an execution after deploy to check the IMS end to end',
    });
  }
}

/**
 * Lets a workflow task assume the access role of any of the tenant's installs (`ferry.<tenant>.<installId>` in the
 * customer's account). The customer's role decides: it trusts only this tenant's task roles and
 * requires the install's ExternalId.
 */
function grantAssumeInstallRoles(grantee: iam.IGrantable, tenant: string): void {
  iam.Grant.addToPrincipal({
    grantee,
    actions: ['sts:AssumeRole'],
    resourceArns: [`arn:${Aws.PARTITION}:iam::*:role/${installRoleName(tenant, '*')}`],
  });
  acknowledgeOnGrantee(
    grantee,
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/${installRoleName(tenant, '*')}]`,
    "Installs live in customers' accounts, unknown at deploy time; each customer's role trusts only this tenant's task roles and requires the install's ExternalId.",
  );
}
