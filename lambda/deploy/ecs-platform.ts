/**
 * Applies `image` and `dockerfile` components as ECS Fargate services in the install's account,
 * through the install's role: a task definition with the synced image digest and the rendered
 * settings, the service created or updated, then a wait for steady state. Destroying scales the
 * service to zero, deletes it, waits until it is inactive and deregisters the family's task
 * definitions.
 */
import {
  ClusterNotFoundException,
  CreateServiceCommand,
  DeleteServiceCommand,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  ECSClient,
  paginateListTaskDefinitions,
  RegisterTaskDefinitionCommand,
  ServiceNotActiveException,
  ServiceNotFoundException,
  UpdateServiceCommand,
  waitUntilServicesInactive,
  waitUntilServicesStable,
} from '@aws-sdk/client-ecs';
import { sessionNameFor, taskExecutionRoleArn } from '../shared/install-role';
import type { AwsInstallAccess } from '../sync/access';
import type { ApplyRequest, ApplyResult, DestroyRequest, Platform } from './platform';

export interface EcsPlatformOptions {
  readonly access: Pick<AwsInstallAccess, 'credentialsFor'>;
  readonly tenant: string;
  /** How long to wait for a service to reach steady state. @default 600 */
  readonly stableWaitSeconds?: number;
  /** Seconds between steady-state checks. @default 15 */
  readonly pollSeconds?: number;
  /** Builds the ECS client (tests inject one). @default a new ECSClient */
  readonly ecsClient?: (
    region: string,
    credentials: Awaited<ReturnType<AwsInstallAccess['credentialsFor']>>,
  ) => ECSClient;
}

/** The errors ECS answers for a service (or its cluster) that no longer exists. */
function isGone(error: unknown): boolean {
  return (
    error instanceof ServiceNotFoundException ||
    error instanceof ServiceNotActiveException ||
    error instanceof ClusterNotFoundException
  );
}

export class EcsPlatform implements Platform {
  constructor(private readonly options: EcsPlatformOptions) {}

  private async clientFor(install: ApplyRequest['install'], purpose: string): Promise<ECSClient> {
    const credentials = await this.options.access.credentialsFor(install, sessionNameFor(purpose));
    return (
      this.options.ecsClient?.(install.region, credentials) ??
      new ECSClient({ region: install.region, credentials })
    );
  }

  /**
   * Removes the component's service and task definitions, through the install's role: desired
   * count 0, DeleteService (forced, so running tasks stop), a wait until the service is inactive,
   * then every active revision of the `ferry-<component>` family deregistered. A service or
   * cluster already gone is not an error.
   */
  async destroy(request: DestroyRequest): Promise<void> {
    const { spec, install } = request;
    if (spec.type !== 'image' && spec.type !== 'dockerfile') {
      throw new Error(`the ECS platform removes image and dockerfile components, not ${spec.type}`);
    }
    // Without a service, apply created nothing in the install's account.
    if (!spec.service) return;
    const { cluster } = spec.service;
    const service = request.component;
    const ecs = await this.clientFor(install, request.deployId);
    const where = `service ${service} in cluster ${cluster} (account ${install.accountId}, ${install.region})`;

    /** The service's status; undefined when it (or its cluster) does not exist. */
    const statusNow = async () => {
      try {
        const described = await ecs.send(new DescribeServicesCommand({ cluster, services: [service] }));
        return described.services?.find((candidate) => candidate.serviceName === service)?.status;
      } catch (error) {
        if (isGone(error)) return undefined;
        throw error;
      }
    };
    const status = await statusNow();
    if (status === 'ACTIVE') {
      try {
        await ecs.send(new UpdateServiceCommand({ cluster, service, desiredCount: 0 }));
        await ecs.send(new DeleteServiceCommand({ cluster, service, force: true }));
      } catch (error) {
        if (!isGone(error)) throw error;
      }
    }
    if (status === 'ACTIVE' || status === 'DRAINING') {
      const waitSeconds = this.options.stableWaitSeconds ?? 600;
      await waitUntilServicesInactive(
        { client: ecs, maxWaitTime: waitSeconds, minDelay: this.options.pollSeconds ?? 15 },
        { cluster, services: [service] },
      ).catch(async () => {
        // The waiter gives up when the service is already MISSING, which is as good as inactive.
        const after = await statusNow();
        if (after !== undefined && after !== 'INACTIVE') {
          throw new Error(
            `${where} did not become inactive within ${waitSeconds}s of its deletion: ${after}`,
          );
        }
      });
    }

    const family = `ferry-${request.component}`;
    const revisions: string[] = [];
    for await (const page of paginateListTaskDefinitions(
      { client: ecs },
      { familyPrefix: family, status: 'ACTIVE' },
    )) {
      for (const arn of page.taskDefinitionArns ?? []) {
        // familyPrefix matches ferry-web2 too: keep this family's revisions only.
        if (/:task-definition\/(.+):\d+$/.exec(arn)?.[1] === family) revisions.push(arn);
      }
    }
    for (const taskDefinition of revisions) {
      await ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition }));
    }
  }

  async apply(request: ApplyRequest): Promise<ApplyResult> {
    const { spec, install } = request;
    if (spec.type !== 'image' && spec.type !== 'dockerfile') {
      throw new Error(`the ECS platform applies image and dockerfile components, not ${spec.type}`);
    }
    if (!spec.service) return { outputs: { image: request.artifact.uri } };
    const service = spec.service;
    const ecs = await this.clientFor(install, request.deployId);
    const family = `ferry-${request.component}`;
    const number = (value: string | number, field: string) => {
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed <= 0)
        throw new Error(`service.${field} rendered to '${value}', not a positive whole number`);
      return parsed;
    };
    const registered = await ecs.send(
      new RegisterTaskDefinitionCommand({
        family,
        requiresCompatibilities: ['FARGATE'],
        networkMode: 'awsvpc',
        cpu: String(number(service.cpu, 'cpu')),
        memory: String(number(service.memory, 'memory')),
        executionRoleArn: taskExecutionRoleArn(install.accountId, this.options.tenant, install.id),
        containerDefinitions: [
          {
            name: request.component,
            image: request.artifact.uri,
            essential: true,
            environment: Object.entries(service.environment).map(([name, value]) => ({ name, value })),
            ...(service.port !== undefined && {
              portMappings: [{ containerPort: number(service.port, 'port'), protocol: 'tcp' }],
            }),
            logConfiguration: {
              logDriver: 'awslogs',
              options: {
                'awslogs-group': `/ferry/${install.id}`,
                'awslogs-region': install.region,
                'awslogs-stream-prefix': request.component,
              },
            },
          },
        ],
        tags: [
          { key: 'ferry:install', value: install.id },
          { key: 'ferry:deploy', value: request.deployId },
        ],
      }),
    );
    const taskDefinitionArn = registered.taskDefinition?.taskDefinitionArn;
    if (!taskDefinitionArn) throw new Error(`ECS registered no task definition for ${family}`);

    const existing = await ecs.send(
      new DescribeServicesCommand({ cluster: service.cluster, services: [request.component] }),
    );
    const active = existing.services?.find((candidate) => candidate.status === 'ACTIVE');
    const network = {
      awsvpcConfiguration: {
        subnets: service.subnets,
        securityGroups: service.securityGroups,
        assignPublicIp: service.assignPublicIp ? ('ENABLED' as const) : ('DISABLED' as const),
      },
    };
    const result = active
      ? await ecs.send(
          new UpdateServiceCommand({
            cluster: service.cluster,
            service: request.component,
            taskDefinition: taskDefinitionArn,
            desiredCount: service.desiredCount,
            networkConfiguration: network,
          }),
        )
      : await ecs.send(
          new CreateServiceCommand({
            cluster: service.cluster,
            serviceName: request.component,
            taskDefinition: taskDefinitionArn,
            desiredCount: service.desiredCount,
            launchType: 'FARGATE',
            networkConfiguration: network,
            tags: [{ key: 'ferry:install', value: install.id }],
          }),
        );
    const serviceArn = result.service?.serviceArn ?? '';
    await waitUntilServicesStable(
      {
        client: ecs,
        maxWaitTime: this.options.stableWaitSeconds ?? 600,
        minDelay: this.options.pollSeconds ?? 15,
      },
      { cluster: service.cluster, services: [request.component] },
    ).catch((error: Error) => {
      throw new Error(
        `service ${request.component} in cluster ${service.cluster} did not reach steady state: ${error.message}`,
      );
    });
    return {
      outputs: { serviceArn, serviceName: request.component, cluster: service.cluster, taskDefinitionArn },
    };
  }
}
