/**
 * Builds: one run of the build agent for one component at one source revision. A build is
 * recorded before anything runs, moves queued -> running -> succeeded | failed exactly once, keeps
 * the component spec it was asked for, and appends every step to the app's history.
 */
import { ConflictError, NotFoundError } from './errors';
import type { ComponentSpec, ComponentType } from './schemas';
import { type Created, conditionFailedAt, type Idempotency, type Item, type StateStore } from './state-store';
import { gsi1, keys, type Page, type PageRequest, withoutKeys } from './store';

export type BuildStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** Where a build's artifact lives and what it is. */
export interface Artifact {
  /** `<registry>/<repository>@<digest>`, or the chart's repository for a prebuilt chart. */
  readonly uri: string;
  readonly registry?: string;
  readonly repository?: string;
  readonly tag?: string;
  readonly digest?: string;
  /** Size of the manifest in bytes. */
  readonly size?: number;
  readonly mediaType?: string;
  /** A prebuilt Helm chart is recorded, not built: deployed from here, never synced. */
  readonly chart?: { readonly repo: string; readonly name: string; readonly version: string };
}

export interface BuildFailure {
  /** The step that failed: `start`, `prepare`, or a build phase (`PRE_BUILD`, `BUILD`, …). */
  readonly step: string;
  readonly message: string;
}

export interface Build {
  readonly id: string;
  readonly appId: string;
  readonly appName: string;
  readonly component: string;
  readonly componentType: ComponentType;
  readonly componentVersion: number;
  /** The spec as it was when the build was asked for. */
  readonly spec: ComponentSpec;
  /** The ref asked for, overriding the spec's. */
  readonly ref?: string;
  readonly status: BuildStatus;
  readonly artifact?: Artifact;
  /** The commit (or source image reference) the artifact was built from. */
  readonly sourceRevision?: string;
  readonly failure?: BuildFailure;
  readonly logsUrl?: string;
  readonly actor: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
}

export interface RequestBuildInput {
  readonly appId: string;
  readonly appName: string;
  readonly component: string;
  readonly componentVersion: number;
  readonly spec: ComponentSpec;
  readonly ref?: string;
}

export class Builds {
  constructor(private readonly store: StateStore) {}

  async request(input: RequestBuildInput, actor: string, idempotency?: Idempotency): Promise<Created<Build>> {
    return this.store.idempotent(
      idempotency,
      (id) => this.get(id),
      async (remember) => {
        const id = this.store.newId('build');
        const at = this.store.timestamp();
        const build: Build = {
          id,
          appId: input.appId,
          appName: input.appName,
          component: input.component,
          componentType: input.spec.type,
          componentVersion: input.componentVersion,
          spec: input.spec,
          ...(input.ref !== undefined && { ref: input.ref }),
          status: 'queued',
          actor,
          createdAt: at,
          updatedAt: at,
        };
        await this.store.transact([
          this.store.put(
            { ...keys.build(id), gsi1pk: gsi1.buildsOf(input.appId, input.component), gsi1sk: id, ...build },
            'attribute_not_exists(pk)',
          ),
          this.store.eventPut({
            appId: input.appId,
            type: 'build.queued',
            actor,
            message: `build ${id} of ${input.component} (${input.spec.type}) queued${input.ref ? ` at ${input.ref}` : ''}`,
            data: { buildId: id, component: input.component, ref: input.ref ?? null },
          }),
          ...remember(id),
        ]);
        return build;
      },
    );
  }

  async get(buildId: string): Promise<Build> {
    const item = await this.store.get(keys.build(buildId));
    if (!item)
      throw new NotFoundError(`build ${buildId} does not exist`, [
        { path: 'path.buildId', message: 'no such build' },
      ]);
    return toBuild(item);
  }

  /** A component's builds, newest first. */
  async listForComponent(appId: string, component: string, page: PageRequest): Promise<Page<Build>> {
    const partition = gsi1.buildsOf(appId, component);
    return this.store.queryPartition({ index: 'gsi1', partition, newestFirst: true }, page, toBuild);
  }

  /** The id of the component's newest succeeded build, if it has one. */
  async latestSucceeded(appId: string, component: string): Promise<string | undefined> {
    let nextToken: string | undefined;
    do {
      const page = await this.listForComponent(appId, component, { limit: 50, nextToken });
      const found = page.items.find((build) => build.status === 'succeeded');
      if (found) return found.id;
      nextToken = page.nextToken;
    } while (nextToken);
    return undefined;
  }

  /** queued -> running; a retried step that finds it running already is answered with the build. */
  async markRunning(buildId: string, actor: string): Promise<Build> {
    const build = await this.get(buildId);
    if (build.status === 'running') return build;
    if (build.status !== 'queued') {
      throw new ConflictError('BuildFinished', `build ${buildId} is ${build.status}; it cannot start again`);
    }
    const at = this.store.timestamp();
    await this.transition(
      build,
      'running',
      { startedAt: at },
      actor,
      'build.started',
      `build ${buildId} started`,
      {},
    );
    return { ...build, status: 'running', startedAt: at, updatedAt: at };
  }

  async recordSuccess(
    buildId: string,
    result: { artifact: Artifact; sourceRevision?: string; logsUrl?: string },
    actor: string,
  ): Promise<Build> {
    const build = await this.get(buildId);
    if (build.status === 'succeeded') return build;
    if (build.status !== 'running') {
      throw new ConflictError(
        'BuildNotRunning',
        `build ${buildId} is ${build.status}; only a running build can succeed`,
      );
    }
    const at = this.store.timestamp();
    const changes = {
      artifact: result.artifact,
      ...(result.sourceRevision !== undefined && { sourceRevision: result.sourceRevision }),
      ...(result.logsUrl !== undefined && { logsUrl: result.logsUrl }),
      finishedAt: at,
    };
    await this.transition(
      build,
      'succeeded',
      changes,
      actor,
      'build.succeeded',
      `build ${buildId} succeeded: ${result.artifact.uri}`,
      {
        artifact: result.artifact,
        sourceRevision: result.sourceRevision ?? null,
      },
    );
    return { ...build, ...changes, status: 'succeeded', updatedAt: at };
  }

  /** Records why a build failed; a build already failed keeps its first failure. */
  async recordFailure(
    buildId: string,
    failure: BuildFailure,
    actor: string,
    logsUrl?: string,
  ): Promise<Build> {
    const build = await this.get(buildId);
    if (build.status === 'failed') return build;
    if (build.status === 'succeeded') {
      throw new ConflictError('BuildFinished', `build ${buildId} already succeeded; it cannot fail`);
    }
    const at = this.store.timestamp();
    const changes = { failure, finishedAt: at, ...(logsUrl !== undefined && { logsUrl }) };
    await this.transition(
      build,
      'failed',
      changes,
      actor,
      'build.failed',
      `build ${buildId} failed at ${failure.step}: ${failure.message}`,
      {
        failure,
        logsUrl: logsUrl ?? null,
      },
    );
    return { ...build, ...changes, status: 'failed', updatedAt: at };
  }

  private async transition(
    build: Build,
    status: BuildStatus,
    changes: Record<string, unknown>,
    actor: string,
    type: string,
    message: string,
    data: Record<string, unknown>,
  ): Promise<void> {
    const names: Record<string, string> = { '#status': 'status', '#updatedAt': 'updatedAt' };
    const values: Record<string, unknown> = {
      ':status': status,
      ':from': build.status,
      ':at': this.store.timestamp(),
    };
    const sets = ['#status = :status', '#updatedAt = :at'];
    for (const [name, value] of Object.entries(changes)) {
      names[`#${name}`] = name;
      values[`:${name}`] = value;
      sets.push(`#${name} = :${name}`);
    }
    try {
      await this.store.transact([
        {
          Update: {
            TableName: this.store.table,
            Key: keys.build(build.id),
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: '#status = :from',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          },
        },
        this.store.eventPut({
          appId: build.appId,
          type,
          actor,
          message,
          data: { buildId: build.id, component: build.component, ...data },
        }),
      ]);
    } catch (error) {
      if (conditionFailedAt(error, 0)) {
        throw new ConflictError(
          'BuildChanged',
          `build ${build.id} changed from ${build.status} while moving to ${status}; read it again`,
        );
      }
      throw error;
    }
  }
}

function toBuild(item: Item): Build {
  return withoutKeys(item) as unknown as Build;
}
