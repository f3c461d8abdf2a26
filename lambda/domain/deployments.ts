/**
 * What is deployed in an install: one item per component, written by the deploy workflow after
 * each component's step, together with the install's history event in one transaction. Sensitive
 * outputs are never stored in clear: only their names are kept.
 */
import type { StateStore } from './state-store';
import { keys, PAGE_LIMIT_MAX, withoutKeys } from './store';

export type DeploymentStatus = 'deployed' | 'failed' | 'skipped' | 'removed';

/** Where a component's deploy failed, in words a person can act on. */
export interface DeploymentError {
  /** The step that failed: `sync`, `render`, `apply`, … */
  readonly step: string;
  readonly account: string;
  readonly region: string;
  readonly cause: string;
}

export interface DeploymentRecord {
  readonly status: DeploymentStatus;
  readonly buildId?: string;
  /** The digest of the artifact deployed. */
  readonly digest?: string;
  /** Every output the apply gave, sensitive ones included: those are dropped before writing. */
  readonly outputs?: Readonly<Record<string, string>>;
  /** Names of the outputs whose values must never be stored. */
  readonly sensitiveOutputs?: readonly string[];
  readonly releaseId?: string;
  readonly error?: DeploymentError;
  /** What wrote the record, for the history's words. @default 'deploy' */
  readonly operation?: 'deploy' | 'teardown';
  /** The sensitive outputs' values, sealed with the tenant key: kept for dependants, never shown. */
  readonly sealedOutputs?: Readonly<Record<string, string>>;
}

export interface DeployedComponent {
  readonly installId: string;
  readonly appId: string;
  readonly component: string;
  readonly status: DeploymentStatus;
  readonly buildId?: string;
  readonly digest?: string;
  /** The non-sensitive outputs, with their values. */
  readonly outputs: Record<string, string>;
  /** The names of the sensitive outputs; their values are not stored. */
  readonly sensitiveOutputs: string[];
  readonly releaseId?: string;
  readonly error?: DeploymentError;
  readonly actor: string;
  readonly updatedAt: string;
}

const EVENT_TYPES: Record<DeploymentStatus, string> = {
  deployed: 'component.deployed',
  failed: 'component.deploy-failed',
  skipped: 'component.skipped',
  removed: 'component.removed',
};

export class Deployments {
  constructor(private readonly store: StateStore) {}

  /** Records a component's deploy outcome in an install and its history event, in one transaction. */
  async record(
    installId: string,
    appId: string,
    component: string,
    record: DeploymentRecord,
    actor: string,
  ): Promise<DeployedComponent> {
    const sensitive = [...new Set(record.sensitiveOutputs ?? [])].sort();
    const outputs = Object.fromEntries(
      Object.entries(record.outputs ?? {}).filter(([name]) => !sensitive.includes(name)),
    );
    const deployed: DeployedComponent = {
      installId,
      appId,
      component,
      status: record.status,
      ...(record.buildId !== undefined && { buildId: record.buildId }),
      ...(record.digest !== undefined && { digest: record.digest }),
      outputs,
      sensitiveOutputs: sensitive,
      ...(record.releaseId !== undefined && { releaseId: record.releaseId }),
      ...(record.error !== undefined && { error: { ...record.error } }),
      actor,
      updatedAt: this.store.timestamp(),
    };
    const eventOutputs = {
      ...outputs,
      ...Object.fromEntries(sensitive.map((name) => [name, '(sensitive)'])),
    };
    await this.store.transact([
      this.store.put({
        ...keys.deployedComponent(installId, component),
        ...deployed,
        ...(record.sealedOutputs &&
          Object.keys(record.sealedOutputs).length > 0 && { sealedOutputs: record.sealedOutputs }),
      }),
      this.store.eventPut({
        appId,
        installId,
        type: EVENT_TYPES[record.status],
        actor,
        message: messageOf(component, installId, record),
        data: {
          component,
          status: record.status,
          ...(record.buildId !== undefined && { buildId: record.buildId }),
          ...(record.digest !== undefined && { digest: record.digest }),
          ...(record.releaseId !== undefined && { releaseId: record.releaseId }),
          outputs: eventOutputs,
          ...(record.error !== undefined && { error: { ...record.error } }),
        },
      }),
    ]);
    return deployed;
  }

  /** Every component recorded for the install, by name. */
  async list(installId: string): Promise<DeployedComponent[]> {
    return (await this.listWithSealed(installId)).records;
  }

  /**
   * Every component recorded for the install, by name, and each one's sealed sensitive outputs
   * (component -> output -> sealed value), for a step that renders dependants: one read for both.
   */
  async listWithSealed(
    installId: string,
  ): Promise<{ records: DeployedComponent[]; sealedOutputs: Record<string, Record<string, string>> }> {
    const partition = keys.deployedComponent(installId, '').pk;
    const records: DeployedComponent[] = [];
    const sealedOutputs: Record<string, Record<string, string>> = {};
    let nextToken: string | undefined;
    do {
      const page = await this.store.queryPartition(
        { partition, skPrefix: keys.deployedPrefix, consistent: true },
        { limit: PAGE_LIMIT_MAX, ...(nextToken && { nextToken }) },
        (item) => item,
      );
      for (const item of page.items) {
        records.push(toDeployed(item));
        if (item.sealedOutputs) {
          sealedOutputs[item.component as string] = item.sealedOutputs as Record<string, string>;
        }
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return { records, sealedOutputs };
  }
}

function messageOf(component: string, installId: string, record: DeploymentRecord): string {
  const error = record.error;
  if (record.operation === 'teardown' && record.status !== 'removed') {
    const why = error ? ` at ${error.step} in ${error.account}/${error.region}: ${error.cause}` : '';
    return record.status === 'failed'
      ? `component ${component} could not be removed from install ${installId}${why}`
      : `component ${component} kept in install ${installId}${error ? `: ${error.cause}` : ''}`;
  }
  switch (record.status) {
    case 'deployed':
      return `component ${component} deployed to install ${installId}`;
    case 'failed': {
      const where = error ? ` at ${error.step} in ${error.account}/${error.region}: ${error.cause}` : '';
      return `component ${component} failed to deploy to install ${installId}${where}`;
    }
    case 'skipped':
      return `component ${component} skipped in install ${installId}: a component it depends on failed`;
    case 'removed':
      return `component ${component} removed from install ${installId}`;
  }
}

function toDeployed(item: Record<string, unknown>): DeployedComponent {
  const { sealedOutputs: _sealed, ...rest } = withoutKeys(item);
  return rest as unknown as DeployedComponent;
}
