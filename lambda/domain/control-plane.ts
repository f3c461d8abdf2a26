/**
 * The control plane: apps, their inputs and components, installs, and the history of every change.
 * Plain TypeScript over a DynamoDB document client: the Lambda API handler, local mode and tests
 * all call it the same way. Every change and its history event are written in one transaction,
 * with conditions that keep names unique, versions current and the component graph acyclic.
 */
import { randomBytes } from 'node:crypto';
import { DeleteCommand, type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, type Problem, ValidationError, VersionConflictError } from './errors';
import { dependantsOf, findCycle, type GraphNode } from './graph';
import {
  type ComponentSpec,
  type CreateAppRequest,
  type CreateInstallRequest,
  IMAGE_PRODUCING_TYPES,
  type InputDefinition,
  type UpdateAppRequest,
} from './schemas';
import type { SecretSealer } from './secrets';
import {
  type Created,
  conditionFailedAt,
  type HistoryEvent,
  type Idempotency,
  type Item,
  StateStore,
  type TransactItem,
} from './state-store';
import { gsi1, keys, type Page, type PageRequest, withoutKeys } from './store';
import { findReferences, referencedComponents } from './templates';

export type { Created, HistoryEvent, Idempotency } from './state-store';

// ---- records as the API shows them -------------------------------------------------------------

export interface App {
  readonly id: string;
  readonly name: string;
  readonly description?: string;
  readonly inputs: InputDefinition[];
  readonly componentCount: number;
  readonly installCount: number;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface Component {
  readonly appId: string;
  readonly name: string;
  readonly spec: ComponentSpec;
  /** Explicit dependsOn plus the components its templates reference, sorted. */
  readonly dependencies: string[];
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type InstallStatus = 'awaiting-access' | 'connected' | 'access-denied';

export interface Install {
  readonly id: string;
  readonly appId: string;
  readonly name?: string;
  readonly accountId: string;
  readonly region: string;
  /** The non-sensitive inputs given. */
  readonly inputs: Record<string, string>;
  /** The names of the sensitive inputs given; their values are never returned. */
  readonly sensitiveInputs: string[];
  /** The sts:ExternalId the install's role requires: unique, unguessable, never reused. */
  readonly externalId: string;
  readonly status: InstallStatus;
  /** The last check of the customer's role: when, which role, and why it failed. */
  readonly access?: AccessCheck;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AccessCheck {
  readonly checkedAt: string;
  readonly roleArn: string;
  /** Why the role could not be assumed; absent when it could. */
  readonly cause?: string;
}

export interface ControlPlaneOptions {
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  /** Seals sensitive install inputs; a control plane without one (a workflow step) cannot create installs that have them. */
  readonly sealer?: SecretSealer;
  readonly now?: () => Date;
  /** Random bytes for external ids. @default crypto.randomBytes */
  readonly randomBytes?: (size: number) => Buffer;
}

export interface DeleteInstallOptions {
  /**
   * Delete only while this owner (a teardown) holds the install's lock, releasing the lock in the
   * same transaction. @default the install must not be locked
   */
  readonly lockOwner?: string;
  /** The history event written with the delete. @default `install.deleted` */
  readonly event?: {
    readonly type: string;
    readonly message: string;
    readonly data?: Record<string, unknown>;
  };
}

export const MAX_COMPONENTS_PER_APP = 50;
/** TransactWriteItems takes at most 100 items. */
const MAX_TRANSACTION_ITEMS = 100;
export const IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60;
const MAX_GRAPH_RETRIES = 3;
const SENSITIVE = '(sensitive)';

export class ControlPlane {
  private readonly store: StateStore;
  private readonly sealer?: SecretSealer;
  private readonly random: (size: number) => Buffer;

  constructor(options: ControlPlaneOptions) {
    this.store = new StateStore(options);
    this.sealer = options.sealer;
    this.random = options.randomBytes ?? randomBytes;
  }

  // ---- apps ------------------------------------------------------------------------------------

  async createApp(
    request: CreateAppRequest,
    actor: string,
    idempotency?: Idempotency,
  ): Promise<Created<App>> {
    return this.store.idempotent(
      idempotency,
      (id) => this.getApp(id),
      async (remember) => {
        const id = this.store.newId('app');
        const at = this.store.timestamp();
        const app: App = {
          id,
          name: request.name,
          ...(request.description !== undefined && { description: request.description }),
          inputs: request.inputs,
          componentCount: 0,
          installCount: 0,
          version: 1,
          createdAt: at,
          updatedAt: at,
        };
        try {
          await this.store.transact([
            this.store.put({ ...keys.app(id), gsi1pk: gsi1.apps, gsi1sk: app.name, ...app, graphVersion: 1 }),
            this.store.put({ ...keys.appName(app.name), appId: id }, 'attribute_not_exists(pk)'),
            this.store.eventPut({
              appId: id,
              type: 'app.created',
              actor,
              message: `app ${app.name} created`,
              data: { app: appSummary(app) },
            }),
            ...remember(id),
          ]);
        } catch (error) {
          if (conditionFailedAt(error, 1)) {
            throw new ConflictError('NameTaken', `an app named '${app.name}' already exists`, [
              { path: 'body.name', message: 'must be unique within the tenant' },
            ]);
          }
          throw error;
        }
        return app;
      },
    );
  }

  async getApp(appId: string): Promise<App> {
    const item = await this.store.get(keys.app(appId));
    if (!item)
      throw new NotFoundError(`app ${appId} does not exist`, [
        { path: 'path.appId', message: 'no such app' },
      ]);
    return toApp(item);
  }

  async listApps(page: PageRequest): Promise<Page<App>> {
    return this.store.queryPartition({ index: 'gsi1', partition: gsi1.apps }, page, toApp);
  }

  async updateApp(appId: string, update: UpdateAppRequest, actor: string, ifMatch?: number): Promise<App> {
    return this.withGraphRetry(async () => {
      const current = await this.getApp(appId);
      if (ifMatch !== undefined && ifMatch !== current.version)
        throw staleVersion(`app ${appId}`, current.version, ifMatch);
      const graphVersion = await this.graphVersion(appId);
      const inputs = update.inputs ?? current.inputs;
      if (update.inputs) {
        const components = await this.allComponents(appId);
        const problems = components.flatMap((component) =>
          inputProblems(
            component.spec,
            new Set(inputs.map((input) => input.name)),
            `components.${component.name}`,
          ),
        );
        if (problems.length > 0) {
          throw new ValidationError('components reference inputs this update removes', problems);
        }
        const added = inputs.filter(
          (input) =>
            input.required &&
            input.default === undefined &&
            !current.inputs.some((old) => old.name === input.name && old.required),
        );
        if (added.length > 0 && current.installCount > 0) {
          throw new ConflictError(
            'InstallsLackInput',
            `app ${appId} has ${current.installCount} install(s) that do not give the new required input(s) ${added.map((i) => i.name).join(', ')}`,
            added.map((input) => ({
              path: `body.inputs[${inputs.indexOf(input)}]`,
              message: 'give it a default, or make it optional, while installs exist',
            })),
          );
        }
      }
      const updated: App = {
        ...current,
        ...(update.description !== undefined && { description: update.description }),
        inputs,
        version: current.version + 1,
        updatedAt: this.store.timestamp(),
      };
      try {
        await this.store.transact([
          {
            Update: {
              TableName: this.store.table,
              Key: keys.app(appId),
              UpdateExpression: 'SET #d = :d, inputs = :i, version = :nv, updatedAt = :u, graphVersion = :ng',
              ConditionExpression: 'version = :v AND graphVersion = :g',
              ExpressionAttributeNames: { '#d': 'description' },
              ExpressionAttributeValues: {
                ':d': updated.description ?? null,
                ':i': inputs,
                ':nv': updated.version,
                ':v': current.version,
                ':u': updated.updatedAt,
                ':g': graphVersion,
                ':ng': graphVersion + 1,
              },
            },
          },
          this.store.eventPut({
            appId,
            type: 'app.updated',
            actor,
            message: `app ${current.name} updated`,
            data: { changed: Object.keys(update), version: updated.version },
          }),
        ]);
      } catch (error) {
        if (conditionFailedAt(error, 0)) throw new GraphChanged();
        throw error;
      }
      return updated.description === null ? { ...updated, description: undefined } : updated;
    });
  }

  async deleteApp(appId: string, actor: string, ifMatch?: number): Promise<void> {
    const app = await this.getApp(appId);
    if (ifMatch !== undefined && ifMatch !== app.version)
      throw staleVersion(`app ${appId}`, app.version, ifMatch);
    if (app.installCount > 0) throw installsRemain(app);
    const components = await this.allComponents(appId);
    try {
      await this.store.transact([
        {
          Delete: {
            TableName: this.store.table,
            Key: keys.app(appId),
            ConditionExpression: 'version = :v AND installCount = :zero AND componentCount = :c',
            ExpressionAttributeValues: { ':v': app.version, ':zero': 0, ':c': components.length },
          },
        },
        { Delete: { TableName: this.store.table, Key: keys.appName(app.name) } },
        ...components.map((component) => ({
          Delete: { TableName: this.store.table, Key: keys.component(appId, component.name) },
        })),
        this.store.eventPut({
          appId,
          type: 'app.deleted',
          actor,
          message: `app ${app.name} deleted with ${components.length} component(s)`,
          data: { app: appSummary(app), components: components.map((component) => component.name) },
        }),
      ]);
    } catch (error) {
      if (conditionFailedAt(error, 0)) {
        const now = await this.getApp(appId);
        if (now.installCount > 0) throw installsRemain(now);
        throw new VersionConflictError(
          `app ${appId} changed while it was being deleted; read it again and retry`,
        );
      }
      throw error;
    }
  }

  // ---- components ------------------------------------------------------------------------------

  /** Creates or replaces a component; `ifMatch` makes it an update of that version only. */
  async putComponent(
    appId: string,
    name: string,
    spec: ComponentSpec,
    actor: string,
    options: { ifMatch?: number; createOnly?: boolean } = {},
  ): Promise<Created<Component>> {
    return this.withGraphRetry(async () => {
      const app = await this.getApp(appId);
      const graphVersion = await this.graphVersion(appId);
      const components = await this.allComponents(appId);
      const existing = components.find((component) => component.name === name);
      if (existing && options.createOnly) {
        throw new ConflictError('ComponentExists', `component ${name} already exists in app ${appId}`, [
          { path: 'header.if-none-match', message: 'the component exists; drop If-None-Match to replace it' },
        ]);
      }
      if (options.ifMatch !== undefined) {
        if (!existing) {
          throw new NotFoundError(
            `component ${name} does not exist in app ${appId}; If-Match needs an existing version`,
          );
        }
        if (existing.version !== options.ifMatch) {
          throw staleVersion(`component ${name}`, existing.version, options.ifMatch);
        }
      }
      if (!existing && components.length >= MAX_COMPONENTS_PER_APP) {
        throw new ConflictError(
          'TooManyComponents',
          `app ${appId} already has ${MAX_COMPONENTS_PER_APP} components`,
        );
      }
      const dependencies = this.validateComponent(app, components, name, spec);
      const at = this.store.timestamp();
      const component: Component = {
        appId,
        name,
        spec,
        dependencies,
        version: (existing?.version ?? 0) + 1,
        createdAt: existing?.createdAt ?? at,
        updatedAt: at,
      };
      try {
        await this.store.transact([
          this.graphChange(appId, graphVersion, existing ? 0 : 1),
          existing
            ? this.store.put({ ...keys.component(appId, name), ...component }, 'version = :v', {
                ':v': existing.version,
              })
            : this.store.put({ ...keys.component(appId, name), ...component }, 'attribute_not_exists(pk)'),
          this.store.eventPut({
            appId,
            type: existing ? 'component.updated' : 'component.created',
            actor,
            message: `component ${name} (${spec.type}) ${existing ? 'updated' : 'created'}`,
            data: { component: name, type: spec.type, version: component.version, dependencies },
          }),
        ]);
      } catch (error) {
        if (conditionFailedAt(error, 0) || conditionFailedAt(error, 1)) throw new GraphChanged();
        throw error;
      }
      return { value: component, created: !existing };
    });
  }

  async getComponent(appId: string, name: string): Promise<Component> {
    const item = await this.store.get(keys.component(appId, name));
    if (!item) {
      await this.getApp(appId);
      throw new NotFoundError(`component ${name} does not exist in app ${appId}`, [
        { path: 'path.name', message: 'no such component' },
      ]);
    }
    return toComponent(item);
  }

  async listComponents(appId: string, page: PageRequest): Promise<Page<Component>> {
    await this.getApp(appId);
    return this.store.queryPartition(
      { partition: keys.app(appId).pk, skPrefix: keys.componentPrefix },
      page,
      toComponent,
    );
  }

  async deleteComponent(appId: string, name: string, actor: string, ifMatch?: number): Promise<void> {
    return this.withGraphRetry(async () => {
      const graphVersion = await this.graphVersion(appId);
      const components = await this.allComponents(appId);
      const component = components.find((candidate) => candidate.name === name);
      if (!component) {
        throw new NotFoundError(`component ${name} does not exist in app ${appId}`, [
          { path: 'path.name', message: 'no such component' },
        ]);
      }
      if (ifMatch !== undefined && ifMatch !== component.version)
        throw staleVersion(`component ${name}`, component.version, ifMatch);
      const dependants = dependantsOf(graphOf(components), name);
      if (dependants.length > 0) {
        throw new ConflictError('ComponentInUse', `component ${name} is needed by ${dependants.join(', ')}`, [
          { path: 'path.name', message: `remove it from the dependencies of ${dependants.join(', ')} first` },
        ]);
      }
      try {
        await this.store.transact([
          this.graphChange(appId, graphVersion, -1),
          {
            Delete: {
              TableName: this.store.table,
              Key: keys.component(appId, name),
              ConditionExpression: 'version = :v',
              ExpressionAttributeValues: { ':v': component.version },
            },
          },
          this.store.eventPut({
            appId,
            type: 'component.deleted',
            actor,
            message: `component ${name} (${component.spec.type}) deleted`,
            data: { component: name, type: component.spec.type, version: component.version },
          }),
        ]);
      } catch (error) {
        if (conditionFailedAt(error, 0) || conditionFailedAt(error, 1)) throw new GraphChanged();
        throw error;
      }
    });
  }

  // ---- installs --------------------------------------------------------------------------------

  async createInstall(
    appId: string,
    request: CreateInstallRequest,
    actor: string,
    idempotency?: Idempotency,
  ): Promise<Created<Install>> {
    return this.store.idempotent(
      idempotency,
      (id) => this.getInstall(id),
      async (remember) => {
        const app = await this.getApp(appId);
        const { clear, sensitive } = splitInputs(app.inputs, request.inputs);
        const id = this.store.newId('inst');
        const externalId = this.random(24).toString('base64url');
        const sealed: Record<string, string> = {};
        for (const [name, value] of Object.entries(sensitive)) {
          if (!this.sealer)
            throw new Error('this control plane has no sealer: it cannot store sensitive inputs');
          sealed[name] = await this.sealer.seal(value, { installId: id, input: name });
        }
        const at = this.store.timestamp();
        const install: Install = {
          id,
          appId,
          ...(request.name !== undefined && { name: request.name }),
          accountId: request.accountId,
          region: request.region,
          inputs: clear,
          sensitiveInputs: Object.keys(sensitive).sort(),
          externalId,
          status: 'awaiting-access',
          version: 1,
          createdAt: at,
          updatedAt: at,
        };
        try {
          await this.store.transact([
            {
              Update: {
                TableName: this.store.table,
                Key: keys.app(appId),
                UpdateExpression: 'SET installCount = installCount + :one',
                ConditionExpression: 'attribute_exists(pk) AND version = :v',
                ExpressionAttributeValues: { ':one': 1, ':v': app.version },
              },
            },
            this.store.put(
              {
                ...keys.install(id),
                gsi1pk: gsi1.installsOf(appId),
                gsi1sk: id,
                ...install,
                sealedInputs: sealed,
              },
              'attribute_not_exists(pk)',
            ),
            this.store.put({ ...keys.externalId(externalId), installId: id }, 'attribute_not_exists(pk)'),
            this.store.eventPut({
              appId,
              installId: id,
              type: 'install.created',
              actor,
              message: `install ${id} created for account ${install.accountId} in ${install.region}; awaiting access`,
              data: {
                accountId: install.accountId,
                region: install.region,
                inputs: {
                  ...clear,
                  ...Object.fromEntries(Object.keys(sensitive).map((name) => [name, SENSITIVE])),
                },
              },
            }),
            ...remember(id),
          ]);
        } catch (error) {
          if (conditionFailedAt(error, 0)) {
            throw new VersionConflictError(
              `app ${appId} changed while the install was being created; retry the request`,
            );
          }
          throw error;
        }
        return install;
      },
    );
  }

  async getInstall(installId: string): Promise<Install> {
    const item = await this.store.get(keys.install(installId));
    if (!item) {
      throw new NotFoundError(`install ${installId} does not exist`, [
        { path: 'path.installId', message: 'no such install' },
      ]);
    }
    return toInstall(item);
  }
  /**
   * The install's sensitive inputs in clear, for a deploy to render with: unsealed with the tenant
   * key, each bound to its install and name. Never for an API answer.
   */
  async openSensitiveInputs(installId: string): Promise<Record<string, string>> {
    const item = await this.store.get(keys.install(installId));
    const sealed = (item?.sealedInputs ?? {}) as Record<string, string>;
    const names = Object.keys(sealed);
    if (names.length === 0) return {};
    if (!this.sealer) throw new Error('this control plane has no sealer: it cannot open sensitive inputs');
    const sealer = this.sealer;
    const open: Record<string, string> = {};
    for (const name of names) open[name] = await sealer.unseal(sealed[name], { installId, input: name });
    return open;
  }

  /** Records the outcome of assuming the install's role: connected, or access-denied with the cause. */
  async recordAccessCheck(
    installId: string,
    check: { roleArn: string; cause?: string },
    actor: string,
  ): Promise<Install> {
    const install = await this.getInstall(installId);
    const status: InstallStatus = check.cause === undefined ? 'connected' : 'access-denied';
    const access: AccessCheck = {
      checkedAt: this.store.timestamp(),
      roleArn: check.roleArn,
      ...(check.cause !== undefined && { cause: check.cause }),
    };
    const updated: Install = {
      ...install,
      status,
      access,
      version: install.version + 1,
      updatedAt: access.checkedAt,
    };
    try {
      await this.store.transact([
        {
          Update: {
            TableName: this.store.table,
            Key: keys.install(installId),
            UpdateExpression: 'SET #status = :status, #access = :access, version = :nv, updatedAt = :at',
            ConditionExpression: 'version = :v',
            ExpressionAttributeNames: { '#status': 'status', '#access': 'access' },
            ExpressionAttributeValues: {
              ':status': status,
              ':access': access,
              ':nv': updated.version,
              ':v': install.version,
              ':at': access.checkedAt,
            },
          },
        },
        this.store.eventPut({
          appId: install.appId,
          installId,
          type: status === 'connected' ? 'install.connected' : 'install.access-denied',
          actor,
          message:
            status === 'connected'
              ? `install ${installId} connected: ${check.roleArn} assumed`
              : `install ${installId} access denied: ${check.cause}`,
          data: { ...access, accountId: install.accountId, region: install.region },
        }),
      ]);
    } catch (error) {
      if (conditionFailedAt(error, 0))
        throw new VersionConflictError(`install ${installId} changed during the check; check again`);
      throw error;
    }
    return updated;
  }

  /**
   * Deletes an install whose components are all removed (teardown), with its history event, in one
   * transaction: the install, its external id item, its component records, its lock, and one off
   * the app's install count (so the app can be deleted once its installs are). Its history stays
   * readable. Throws ConflictError `InstallHasComponents` while a component is recorded as anything
   * but removed, `InstallLocked` when the lock is not `lockOwner`'s (or, without one, is held), and
   * VersionConflictError when the install changed meanwhile.
   */
  async deleteInstall(
    installId: string,
    actor: string,
    options: DeleteInstallOptions = {},
  ): Promise<Install> {
    const install = await this.getInstall(installId);
    const records = await this.deployedRecords(installId);
    const remaining = records.filter((record) => record.status !== 'removed');
    if (remaining.length > 0) throw componentsRemain(installId, remaining);
    const removed = (component: string) => ({
      TableName: this.store.table,
      Key: keys.deployedComponent(installId, component),
      ConditionExpression: '#status = :removed',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':removed': 'removed' },
    });
    // Records past what one transaction holds are deleted first: they are all removed already.
    const fixedItems = 5;
    const inTransaction = records.slice(0, MAX_TRANSACTION_ITEMS - fixedItems);
    for (const record of records.slice(MAX_TRANSACTION_ITEMS - fixedItems)) {
      await this.store.client.send(new DeleteCommand(removed(record.component)));
    }
    const nowSeconds = Math.floor(this.store.now().getTime() / 1000);
    const lock: TransactItem = options.lockOwner
      ? {
          Delete: {
            TableName: this.store.table,
            Key: keys.installLock(installId),
            ConditionExpression: '#owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':owner': options.lockOwner },
          },
        }
      : {
          ConditionCheck: {
            TableName: this.store.table,
            Key: keys.installLock(installId),
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
            ExpressionAttributeValues: { ':now': nowSeconds },
          },
        };
    try {
      await this.store.transact([
        {
          Delete: {
            TableName: this.store.table,
            Key: keys.install(installId),
            ConditionExpression: 'version = :v',
            ExpressionAttributeValues: { ':v': install.version },
          },
        },
        {
          Update: {
            TableName: this.store.table,
            Key: keys.app(install.appId),
            UpdateExpression: 'SET installCount = installCount - :one',
            ConditionExpression: 'attribute_exists(pk) AND installCount >= :one',
            ExpressionAttributeValues: { ':one': 1 },
          },
        },
        {
          Delete: {
            TableName: this.store.table,
            Key: keys.externalId(install.externalId),
            ConditionExpression: 'attribute_not_exists(pk) OR installId = :id',
            ExpressionAttributeValues: { ':id': installId },
          },
        },
        lock,
        this.store.eventPut({
          appId: install.appId,
          installId,
          type: options.event?.type ?? 'install.deleted',
          actor,
          message:
            options.event?.message ??
            `install ${installId} (account ${install.accountId}, ${install.region}) deleted`,
          data: { accountId: install.accountId, region: install.region, ...options.event?.data },
        }),
        ...inTransaction.map((record) => ({ Delete: removed(record.component) })),
      ]);
    } catch (error) {
      if (conditionFailedAt(error, 0)) {
        throw new VersionConflictError(`install ${installId} changed while it was being deleted; retry`);
      }
      if (conditionFailedAt(error, 3)) {
        const held = await this.store.get(keys.installLock(installId));
        const by = held ? `${held.owner as string} since ${held.acquiredAt as string}` : 'nobody';
        throw new ConflictError(
          'InstallLocked',
          options.lockOwner
            ? `install ${installId} is no longer locked by ${options.lockOwner} (held by ${by}); not deleted`
            : `install ${installId} is being deployed by ${by}; not deleted`,
        );
      }
      if (inTransaction.some((_, index) => conditionFailedAt(error, fixedItems + index))) {
        throw componentsRemain(
          installId,
          (await this.deployedRecords(installId)).filter((record) => record.status !== 'removed'),
        );
      }
      throw error;
    }
    return install;
  }

  /** The install's component records (`DEPLOYED#`), every page: name and status. */
  private async deployedRecords(installId: string): Promise<{ component: string; status: string }[]> {
    const all: { component: string; status: string }[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.store.queryPartition(
        { partition: keys.install(installId).pk, skPrefix: keys.deployedPrefix, consistent: true },
        { limit: 100, nextToken },
        (item) => ({ component: item.component as string, status: item.status as string }),
      );
      all.push(...page.items);
      nextToken = page.nextToken;
    } while (nextToken);
    return all;
  }

  async listInstalls(appId: string, page: PageRequest): Promise<Page<Install>> {
    await this.getApp(appId);
    return this.store.queryPartition({ index: 'gsi1', partition: gsi1.installsOf(appId) }, page, toInstall);
  }

  // ---- history ---------------------------------------------------------------------------------

  /** The app's history, newest first; still readable after the app is deleted. */
  async listAppEvents(appId: string, page: PageRequest): Promise<Page<HistoryEvent>> {
    const partition = keys.event(appId, '').pk;
    const result = await this.store.queryPartition(
      { partition, skPrefix: keys.eventPrefix, newestFirst: true },
      page,
      toEvent,
    );
    if (result.items.length === 0 && page.nextToken === undefined) await this.getApp(appId);
    return result;
  }

  async listInstallEvents(installId: string, page: PageRequest): Promise<Page<HistoryEvent>> {
    const partition = gsi1.eventsOfInstall(installId);
    const result = await this.store.queryPartition(
      { index: 'gsi1', partition, newestFirst: true },
      page,
      toEvent,
    );
    if (result.items.length === 0 && page.nextToken === undefined) await this.getInstall(installId);
    return result;
  }

  // ---- validation ------------------------------------------------------------------------------

  /** Checks a component against its app: references, dependencies, cycles. Returns its dependencies. */
  private validateComponent(
    app: App,
    components: readonly Component[],
    name: string,
    spec: ComponentSpec,
  ): string[] {
    const problems: Problem[] = [];
    const found = findReferences(spec, 'body');
    problems.push(...found.problems);
    const inputNames = new Set(app.inputs.map((input) => input.name));
    const others = new Map(components.filter((c) => c.name !== name).map((c) => [c.name, c]));
    for (const { path, expression, reference } of found.references) {
      if (reference.kind === 'input' && !inputNames.has(reference.name)) {
        problems.push({
          path,
          message: `'{{ ${expression} }}' names input '${reference.name}', which app ${app.name} does not declare`,
        });
      }
      if (reference.kind === 'output' || reference.kind === 'image') {
        if (reference.component === name) {
          problems.push({
            path,
            message: `'{{ ${expression} }}' references the component itself: cycle ${name} -> ${name}`,
          });
          continue;
        }
        const target = others.get(reference.component);
        if (!target) {
          problems.push({
            path,
            message: `'{{ ${expression} }}' names component '${reference.component}', which app ${app.name} does not have`,
          });
        } else if (reference.kind === 'image' && !IMAGE_PRODUCING_TYPES.includes(target.spec.type)) {
          problems.push({
            path,
            message: `'{{ ${expression} }}': component '${reference.component}' is of type ${target.spec.type} and produces no image`,
          });
        }
      }
    }
    spec.dependsOn.forEach((dependency, index) => {
      const path = `body.dependsOn[${index}]`;
      if (dependency === name)
        problems.push({ path, message: `a component cannot depend on itself: cycle ${name} -> ${name}` });
      else if (!others.has(dependency)) {
        problems.push({ path, message: `component '${dependency}' does not exist in app ${app.name}` });
      }
    });
    if (problems.length > 0) throw new ValidationError(`component ${name} is not valid`, problems);

    const dependencies = [...new Set([...spec.dependsOn, ...referencedComponents(found.references)])].sort();
    const graph = [...graphOf([...others.values()]), { name, dependsOn: dependencies }];
    const cycle = findCycle(graph);
    if (cycle) {
      throw new ValidationError(`component ${name} would close a dependency cycle: ${cycle.join(' -> ')}`, [
        { path: 'body', message: `cycle: ${cycle.join(' -> ')}` },
      ]);
    }
    return dependencies;
  }

  // ---- storage helpers -------------------------------------------------------------------------

  private async withGraphRetry<T>(attempt: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof GraphChanged)) throw error;
        if (tries >= MAX_GRAPH_RETRIES) {
          throw new VersionConflictError('the app changed concurrently several times; retry the request');
        }
      }
    }
  }

  /**
   * The app-item half of every component write: the graph must still be at the version read
   * (else another write got there first and this one is re-validated), and moves one on.
   */
  private graphChange(appId: string, graphVersion: number, componentDelta: number): TransactItem {
    return {
      Update: {
        TableName: this.store.table,
        Key: keys.app(appId),
        UpdateExpression: 'SET graphVersion = :ng, componentCount = componentCount + :delta',
        ConditionExpression: 'attribute_exists(pk) AND graphVersion = :g',
        ExpressionAttributeValues: { ':g': graphVersion, ':ng': graphVersion + 1, ':delta': componentDelta },
      },
    };
  }

  private async graphVersion(appId: string): Promise<number> {
    const item = await this.store.client.send(
      new GetCommand({
        TableName: this.store.table,
        Key: keys.app(appId),
        ConsistentRead: true,
        ProjectionExpression: 'graphVersion',
      }),
    );
    if (!item.Item)
      throw new NotFoundError(`app ${appId} does not exist`, [
        { path: 'path.appId', message: 'no such app' },
      ]);
    return item.Item.graphVersion as number;
  }

  /** Every component of the app, every page. */
  async allComponents(appId: string): Promise<Component[]> {
    const all: Component[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.listComponentsRaw(appId, nextToken);
      all.push(...page.items);
      nextToken = page.nextToken;
    } while (nextToken);
    return all;
  }

  private listComponentsRaw(appId: string, nextToken?: string): Promise<Page<Component>> {
    return this.store.queryPartition(
      { partition: keys.app(appId).pk, skPrefix: keys.componentPrefix, consistent: true },
      { limit: 100, nextToken },
      toComponent,
    );
  }
}

// ---- pure helpers --------------------------------------------------------------------------------

/** Raised inside a graph-changing write when another write got there first; the write is retried. */
class GraphChanged extends Error {}

function staleVersion(what: string, current: number, given: number): VersionConflictError {
  return new VersionConflictError(`${what} is at version ${current}, not ${given}; read it again and retry`, [
    { path: 'header.if-match', message: `current version is ${current}` },
  ]);
}

function installsRemain(app: App): ConflictError {
  return new ConflictError(
    'AppHasInstalls',
    `app ${app.name} still has ${app.installCount} install(s); tear them down first`,
    [{ path: 'path.appId', message: `${app.installCount} install(s) remain` }],
  );
}

function componentsRemain(installId: string, remaining: readonly { component: string; status: string }[]) {
  const names = remaining.map((record) => `${record.component} (${record.status})`).join(', ');
  return new ConflictError(
    'InstallHasComponents',
    `install ${installId} still has components that are not removed: ${names}; tear it down first`,
    [{ path: 'path.installId', message: `${remaining.length} component(s) not removed` }],
  );
}

function graphOf(components: readonly Component[]): GraphNode[] {
  return components.map((component) => ({ name: component.name, dependsOn: component.dependencies }));
}

function inputProblems(spec: ComponentSpec, inputs: ReadonlySet<string>, base: string): Problem[] {
  return findReferences(spec, base)
    .references.filter(({ reference }) => reference.kind === 'input' && !inputs.has(reference.name))
    .map(({ path, expression }) => ({
      path,
      message: `'{{ ${expression} }}' would name an input the app no longer declares`,
    }));
}

/** Checks install inputs against the app's declarations; splits them into clear and sensitive. */
function splitInputs(
  declared: readonly InputDefinition[],
  given: Readonly<Record<string, string>>,
): { clear: Record<string, string>; sensitive: Record<string, string> } {
  const problems: Problem[] = [];
  const byName = new Map(declared.map((input) => [input.name, input]));
  for (const name of Object.keys(given)) {
    if (!byName.has(name))
      problems.push({
        path: `body.inputs.${name}`,
        message: `unknown input; the app declares ${[...byName.keys()].join(', ') || 'none'}`,
      });
  }
  for (const input of declared) {
    if (input.required && input.default === undefined && given[input.name] === undefined) {
      problems.push({ path: `body.inputs.${input.name}`, message: 'required input is missing' });
    }
  }
  if (problems.length > 0) throw new ValidationError('install inputs do not match the app', problems);
  const clear: Record<string, string> = {};
  const sensitive: Record<string, string> = {};
  for (const [name, value] of Object.entries(given)) {
    if (byName.get(name)?.sensitive) sensitive[name] = value;
    else clear[name] = value;
  }
  return { clear, sensitive };
}

function appSummary(app: App): Record<string, unknown> {
  return { id: app.id, name: app.name, inputs: app.inputs.map((input) => input.name) };
}

function toApp(item: Item): App {
  const { graphVersion: _g, ...rest } = withoutKeys(item);
  const app = rest as unknown as App & { description?: string | null };
  if (app.description === null) {
    const { description: _d, ...withoutDescription } = app;
    return withoutDescription as App;
  }
  return app;
}

function toComponent(item: Item): Component {
  return withoutKeys(item) as unknown as Component;
}

function toInstall(item: Item): Install {
  const { sealedInputs: _s, ...rest } = withoutKeys(item);
  return rest as unknown as Install;
}

function toEvent(item: Item): HistoryEvent {
  return withoutKeys(item) as unknown as HistoryEvent;
}
