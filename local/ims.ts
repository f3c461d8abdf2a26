/**
 * Local mode: the IMS on loopback. The same API handler Lambda runs, behind the HTTP adapter, on
 * DynamoDB Local keeping its data under a data directory so a restart loses nothing.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createApiHandler } from '../lambda/api/app';
import { BuildSteps } from '../lambda/build/steps';
import { Builds } from '../lambda/domain/builds';
import { ControlPlane } from '../lambda/domain/control-plane';
import { LocalSealer, loadOrCreateLocalKey } from '../lambda/domain/secrets';
import { StateStore } from '../lambda/domain/state-store';
import { RegistryClient } from '../lambda/oci/client';
import { documentClient } from '../lambda/shared/dynamo';
import { synthesizeAccessTemplate } from '../lib/access-template';
import { repositoryPrefixFor } from '../lib/tenant-config';
import { bundlePackagingTool, PACKAGING_TOOL_FILE } from '../tools/bundle';
import { LocalBuildRunner } from './builds';
import { ensureStateTable, type LocalDynamoDb, startDynamoDb } from './dynamodb';
import { type LocalHttpServer, serveProxyHandler } from './http-adapter';
import { LocalInstallAccess } from './install-access';
import { LocalPlatform } from './platform';
import { type LocalRegistry, startRegistry } from './registry';
import { localReleaseRuntime } from './releases';
import type { WorkflowRun } from './stepfunctions';

export const LOCAL_STATE_TABLE = 'ferry-local-state';

export interface LocalImsOptions {
  /** Where the IMS keeps its data. */
  readonly dataDir: string;
  /** The loopback port the API listens on; 0 for any free port. */
  readonly port: number;
  /** @default 'local' */
  readonly tenant?: string;
  /** Told of every finished build workflow (local mode prints it). */
  readonly onBuildFinished?: (buildId: string, status: 'SUCCEEDED' | 'FAILED', cause?: string) => void;
  /** Told of every release workflow that ends. */
  readonly onReleaseFinished?: (releaseId: string, run: WorkflowRun) => void;
  /** Told of every teardown workflow that ends. */
  readonly onTeardownFinished?: (installId: string, run: WorkflowRun) => void;
}

export interface LocalIms {
  readonly url: string;
  readonly dataDir: string;
  readonly dynamoDbEndpoint: string;
  /** The tenant registry builds push to (host:port). */
  readonly registryHost: string;
  /** Resolves when every build started so far has finished. */
  buildsIdle(): Promise<void>;
  /** Resolves when every release started so far, and every deploy it started, has finished. */
  releasesIdle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalIms(options: LocalImsOptions): Promise<LocalIms> {
  mkdirSync(options.dataDir, { recursive: true });
  const tenant = options.tenant ?? 'local';
  const started: { stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const part of started.reverse()) await part.stop();
  };
  try {
    const dynamo: LocalDynamoDb = await startDynamoDb({ dataDir: join(options.dataDir, 'dynamodb') });
    started.push(dynamo);
    const raw = new DynamoDBClient(dynamo.clientConfig);
    await ensureStateTable(raw, LOCAL_STATE_TABLE);
    const registry: LocalRegistry = await startRegistry({ dataDir: join(options.dataDir, 'registry') });
    started.push(registry);

    const client = documentClient(dynamo.clientConfig);
    const sealer = new LocalSealer(loadOrCreateLocalKey(options.dataDir));
    const controlPlane = new ControlPlane({ client, table: LOCAL_STATE_TABLE, sealer });
    const store = new StateStore({ client, table: LOCAL_STATE_TABLE });
    const builds = new Builds(store);
    const tool = join(options.dataDir, 'tools', PACKAGING_TOOL_FILE);
    bundlePackagingTool(tool);
    const buildRunner = new LocalBuildRunner({
      steps: new BuildSteps({
        builds,
        registry: { host: registry.host, prefix: repositoryPrefixFor(tenant) },
        // docker-registry creates a repository on first push.
        repositories: { ensure: async () => undefined },
        defaultImage: 'local',
        environment: { FERRY_REGISTRY_INSECURE: '1' },
      }),
      workRoot: join(options.dataDir, 'builds'),
      packageCommand: `${JSON.stringify(process.execPath)} ${JSON.stringify(tool)}`,
      onFinished: options.onBuildFinished,
    });
    started.push({ stop: () => buildRunner.idle() });
    const installAccess = new LocalInstallAccess(registry.host);
    const runtime = localReleaseRuntime({
      controlPlane,
      builds,
      store,
      tenantRegistry: new RegistryClient({ registry: registry.host, insecure: true }),
      installAccess,
      platform: new LocalPlatform(join(options.dataDir, 'installs')),
      onReleaseFinished: options.onReleaseFinished,
      onTeardownFinished: options.onTeardownFinished,
      sealer,
    });
    const releasesIdle = async () => {
      await runtime.releaseRunner.idle();
      await runtime.executions.idle();
      await runtime.teardownRunner.idle();
    };
    started.push({ stop: releasesIdle });
    const accessTemplate = {
      template: synthesizeAccessTemplate({ tenant }),
      // Local mode has no task roles; the template names a placeholder principal.
      trustedRoleArns: ['arn:aws:iam::000000000000:role/ferry-local-ims'],
    };
    const handler = createApiHandler({
      tenant,
      controlPlane,
      builds,
      buildStarter: buildRunner,
      installAccess,
      accessTemplate,
      deployments: runtime.deployments,
      releases: runtime.releases,
      releaseStarter: runtime.releaseRunner,
      teardownStarter: runtime.teardownRunner,
    });
    const server: LocalHttpServer = await serveProxyHandler(handler, options.port);
    started.push(server);
    started.push({ stop: async () => raw.destroy() });
    return {
      url: server.url,
      dataDir: options.dataDir,
      dynamoDbEndpoint: dynamo.endpoint,
      registryHost: registry.host,
      buildsIdle: () => buildRunner.idle(),
      releasesIdle,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
