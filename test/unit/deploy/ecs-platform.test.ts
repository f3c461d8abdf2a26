import {
  ClusterNotFoundException,
  CreateServiceCommand,
  DeleteServiceCommand,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  ECSClient,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  ServiceNotFoundException,
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

  describe('destroy', () => {
    const revision = (family: string, number: number) =>
      `arn:aws:ecs:eu-west-1:111122223333:task-definition/${family}:${number}`;
    const withStatus = (status: string) => ({ services: [{ serviceName: 'web', status }] });

    it("removes the service through the install's role: scaled to zero, deleted, inactive, its family deregistered", async () => {
      ecs.on(DescribeServicesCommand).resolvesOnce(withStatus('ACTIVE')).resolves(withStatus('INACTIVE'));
      ecs.on(DeleteServiceCommand).resolves({ service: { serviceName: 'web', status: 'DRAINING' } });
      ecs
        .on(ListTaskDefinitionsCommand)
        .resolvesOnce({
          taskDefinitionArns: [revision('ferry-web', 6), revision('ferry-web2', 1)],
          nextToken: 'page-2',
        })
        .resolves({ taskDefinitionArns: [revision('ferry-web', 7)] });
      ecs.on(DeregisterTaskDefinitionCommand).resolves({});

      await platform.destroy({ install, deployId: 'td_01x', component: 'web', spec });

      expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(1);
      expect(sts.commandCalls(AssumeRoleCommand)[0].args[0].input).toMatchObject({
        RoleArn: 'arn:aws:iam::111122223333:role/ferry.acme.inst_01abc',
        ExternalId: 'ext-id-of-install',
        RoleSessionName: 'ferry-td_01x',
      });
      const client = ecs.commandCalls(DeleteServiceCommand)[0].thisValue as unknown as ECSClient;
      expect(await client.config.region()).toBe('eu-west-1');
      expect(ecs.commandCalls(UpdateServiceCommand)[0].args[0].input).toEqual({
        cluster: 'main',
        service: 'web',
        desiredCount: 0,
      });
      expect(ecs.commandCalls(DeleteServiceCommand)[0].args[0].input).toEqual({
        cluster: 'main',
        service: 'web',
        force: true,
      });
      expect(ecs.commandCalls(ListTaskDefinitionsCommand)[0].args[0].input).toMatchObject({
        familyPrefix: 'ferry-web',
        status: 'ACTIVE',
      });
      // Both pages, and only this family: ferry-web2 belongs to another component.
      expect(
        ecs.commandCalls(DeregisterTaskDefinitionCommand).map((call) => call.args[0].input.taskDefinition),
      ).toEqual([revision('ferry-web', 6), revision('ferry-web', 7)]);
      // In that order: scaled down, deleted, waited for, then its task definitions deregistered.
      const order = ecs.calls().map((call) => (call.args[0] as object).constructor.name);
      expect(order.indexOf('UpdateServiceCommand')).toBeLessThan(order.indexOf('DeleteServiceCommand'));
      expect(order.lastIndexOf('DescribeServicesCommand')).toBeLessThan(
        order.indexOf('DeregisterTaskDefinitionCommand'),
      );
      expect(ecs.commandCalls(CreateServiceCommand)).toHaveLength(0);
    });

    it('treats a service that is already gone as removed, and still deregisters its task definitions', async () => {
      ecs
        .on(DescribeServicesCommand)
        .resolves({ services: [], failures: [{ reason: 'MISSING', arn: 'web' }] });
      ecs.on(ListTaskDefinitionsCommand).resolves({ taskDefinitionArns: [revision('ferry-web', 3)] });
      ecs.on(DeregisterTaskDefinitionCommand).resolves({});

      await platform.destroy({ install, deployId: 'td_02', component: 'web', spec });

      expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(0);
      expect(ecs.commandCalls(DeleteServiceCommand)).toHaveLength(0);
      expect(ecs.commandCalls(DeregisterTaskDefinitionCommand)).toHaveLength(1);
    });

    it('treats a service deleted by someone else meanwhile, or a cluster that is gone, as removed', async () => {
      ecs
        .on(DescribeServicesCommand)
        .resolvesOnce(withStatus('ACTIVE'))
        .resolves({
          services: [],
          failures: [{ reason: 'MISSING', arn: 'web' }],
        });
      ecs.on(UpdateServiceCommand).rejects(new ServiceNotFoundException({ message: 'gone', $metadata: {} }));
      ecs.on(ListTaskDefinitionsCommand).resolves({ taskDefinitionArns: [] });
      await expect(
        platform.destroy({ install, deployId: 'td_03', component: 'web', spec }),
      ).resolves.toBeUndefined();
      expect(ecs.commandCalls(DeleteServiceCommand)).toHaveLength(0);

      ecs.reset();
      ecs
        .on(DescribeServicesCommand)
        .rejects(new ClusterNotFoundException({ message: 'no cluster main', $metadata: {} }));
      ecs.on(ListTaskDefinitionsCommand).resolves({ taskDefinitionArns: [] });
      await expect(
        platform.destroy({ install, deployId: 'td_03', component: 'web', spec }),
      ).resolves.toBeUndefined();
      expect(ecs.commandCalls(DeleteServiceCommand)).toHaveLength(0);
    });

    it('says which service did not become inactive, and deregisters nothing', async () => {
      const impatient = new EcsPlatform({
        access: new AwsInstallAccess({ sts: new STSClient({}), tenant: 'acme' }),
        tenant: 'acme',
        pollSeconds: 1,
        stableWaitSeconds: 2,
      });
      ecs.on(DescribeServicesCommand).resolves(withStatus('ACTIVE'));
      ecs.on(DeleteServiceCommand).resolves({});
      await expect(impatient.destroy({ install, deployId: 'td_04', component: 'web', spec })).rejects.toThrow(
        /service web in cluster main \(account 111122223333, eu-west-1\) did not become inactive within 2s of its deletion: ACTIVE/,
      );
      // The waiter polled: the first look, at least one check while waiting, and the last look.
      expect(ecs.commandCalls(DescribeServicesCommand).length).toBeGreaterThanOrEqual(3);
      expect(ecs.commandCalls(ListTaskDefinitionsCommand)).toHaveLength(0);
      expect(ecs.commandCalls(DeregisterTaskDefinitionCommand)).toHaveLength(0);
    });

    it('does nothing for a component without a service, not even assume the role', async () => {
      const { service: _service, ...withoutService } = spec as Extract<ComponentSpec, { type: 'image' }>;
      await platform.destroy({ install, deployId: 'td_05', component: 'web', spec: withoutService });
      expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
      expect(ecs.calls()).toHaveLength(0);
    });

    it('refuses a component that does not run on ECS', async () => {
      await expect(
        platform.destroy({
          install,
          deployId: 'td_06',
          component: 'site',
          spec: {
            type: 'helm',
            chart: { kind: 'prebuilt', repo: 'https://charts.example.com', name: 'site', version: '1.0.0' },
            values: {},
            valuesFiles: [],
            namespace: 'shop',
            dependsOn: [],
          },
        }),
      ).rejects.toThrow(/removes image and dockerfile components, not helm/);
      expect(ecs.calls()).toHaveLength(0);
    });
  });
});
