import {
  CreateServiceCommand,
  DescribeServicesCommand,
  ECSClient,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { EcsPlatform } from '../../../lambda/deploy/ecs-platform';
import type { Install } from '../../../lambda/domain/control-plane';
import type { ComponentSpec } from '../../../lambda/domain/schemas';
import { AwsInstallAccess } from '../../../lambda/sync/access';

const install: Install = {
  id: 'inst_01abc',
  appId: 'app_1',
  accountId: '111122223333',
  region: 'eu-west-1',
  inputs: {},
  sensitiveInputs: [],
  externalId: 'ext-id-of-install',
  status: 'connected',
  version: 2,
  createdAt: '2026-11-24T00:00:00.000Z',
  updatedAt: '2026-11-24T00:00:00.000Z',
};
const digest = `sha256:${'b'.repeat(64)}`;
const image = `111122223333.dkr.ecr.eu-west-1.amazonaws.com/ferry/shop/web@${digest}`;
const spec: ComponentSpec = {
  type: 'image',
  image: { uri: 'docker.io/acme/web:1' },
  service: {
    cluster: 'main',
    subnets: ['subnet-1'],
    securityGroups: ['sg-1'],
    cpu: '512',
    memory: 1024,
    port: '8080',
    desiredCount: 2,
    assignPublicIp: false,
    environment: { DOMAIN: 'shop.example.com' },
  },
  dependsOn: [],
};
const stable = {
  services: [
    {
      status: 'ACTIVE',
      serviceName: 'web',
      deployments: [{ status: 'PRIMARY' }],
      runningCount: 2,
      desiredCount: 2,
    },
  ],
};

describe('ECS platform', () => {
  const sts = mockClient(STSClient);
  const ecs = mockClient(ECSClient);
  const platform = new EcsPlatform({
    access: new AwsInstallAccess({ sts: new STSClient({}), tenant: 'acme' }),
    tenant: 'acme',
    pollSeconds: 1,
    stableWaitSeconds: 5,
  });

  beforeEach(() => {
    sts.reset();
    ecs.reset();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIA',
        SecretAccessKey: 'secret',
        SessionToken: 'token',
        Expiration: new Date(),
      },
    });
    ecs.on(RegisterTaskDefinitionCommand).resolves({
      taskDefinition: {
        taskDefinitionArn: 'arn:aws:ecs:eu-west-1:111122223333:task-definition/ferry-web:7',
      },
    });
    ecs
      .on(CreateServiceCommand)
      .resolves({ service: { serviceArn: 'arn:aws:ecs:eu-west-1:111122223333:service/main/web' } });
    ecs
      .on(UpdateServiceCommand)
      .resolves({ service: { serviceArn: 'arn:aws:ecs:eu-west-1:111122223333:service/main/web' } });
  });

  it("creates the service through the install's role, running the synced digest with the rendered settings", async () => {
    ecs.on(DescribeServicesCommand).resolvesOnce({ services: [] }).resolves(stable);
    const result = await platform.apply({
      install,
      deployId: 'rel_01x',
      component: 'web',
      spec,
      artifact: { uri: image, digest },
    });

    expect(sts.commandCalls(AssumeRoleCommand)[0].args[0].input).toMatchObject({
      RoleArn: 'arn:aws:iam::111122223333:role/ferry.acme.inst_01abc',
      ExternalId: 'ext-id-of-install',
      RoleSessionName: 'ferry-rel_01x',
    });
    const registered = ecs.commandCalls(RegisterTaskDefinitionCommand)[0].args[0].input;
    expect(registered).toMatchObject({
      family: 'ferry-web',
      requiresCompatibilities: ['FARGATE'],
      networkMode: 'awsvpc',
      cpu: '512',
      memory: '1024',
      executionRoleArn: 'arn:aws:iam::111122223333:role/ferry/ferry.acme.inst_01abc.exec',
    });
    expect(registered.containerDefinitions?.[0]).toMatchObject({
      image,
      environment: [{ name: 'DOMAIN', value: 'shop.example.com' }],
      portMappings: [{ containerPort: 8080, protocol: 'tcp' }],
    });
    expect(ecs.commandCalls(CreateServiceCommand)[0].args[0].input).toMatchObject({
      cluster: 'main',
      serviceName: 'web',
      desiredCount: 2,
      launchType: 'FARGATE',
      networkConfiguration: {
        awsvpcConfiguration: { subnets: ['subnet-1'], securityGroups: ['sg-1'], assignPublicIp: 'DISABLED' },
      },
    });
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(0);
    expect(result.outputs).toMatchObject({
      serviceName: 'web',
      cluster: 'main',
      taskDefinitionArn: expect.stringContaining('ferry-web:7'),
    });
    // The ECS client ran with the assumed credentials, in the install's region.
    const client = ecs.commandCalls(RegisterTaskDefinitionCommand)[0].thisValue as unknown as ECSClient;
    expect(await client.config.region()).toBe('eu-west-1');
  });

  it('updates an existing service to the new task definition', async () => {
    ecs.on(DescribeServicesCommand).resolves(stable);
    await platform.apply({
      install,
      deployId: 'rel_02y',
      component: 'web',
      spec,
      artifact: { uri: image, digest },
    });
    expect(ecs.commandCalls(CreateServiceCommand)).toHaveLength(0);
    expect(ecs.commandCalls(UpdateServiceCommand)[0].args[0].input).toMatchObject({
      cluster: 'main',
      service: 'web',
      taskDefinition: 'arn:aws:ecs:eu-west-1:111122223333:task-definition/ferry-web:7',
      desiredCount: 2,
    });
  });

  it('says which service did not reach steady state', async () => {
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce({ services: [] })
      .resolves({ services: [], failures: [{ reason: 'MISSING', arn: 'web' }] });
    await expect(
      platform.apply({
        install,
        deployId: 'rel_03z',
        component: 'web',
        spec,
        artifact: { uri: image, digest },
      }),
    ).rejects.toThrow(/service web in cluster main did not reach steady state/);
  });

  it('refuses a rendered cpu that is not a number, before touching ECS', async () => {
    const bad: ComponentSpec = { ...spec, service: { ...spec.service!, cpu: 'lots' } } as ComponentSpec;
    await expect(
      platform.apply({
        install,
        deployId: 'rel_04',
        component: 'web',
        spec: bad,
        artifact: { uri: image, digest },
      }),
    ).rejects.toThrow(/service.cpu rendered to 'lots'/);
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
  });
});
