/**
 * How the control plane's records sit in the single state table: the keys of every item kind and
 * the paging of lists. The access patterns they serve are written down in docs/state.md; every
 * request path is a GetItem, a Query or a TransactWriteItems, never a Scan.
 */
import { ValidationError } from './errors';

export type Key = { pk: string; sk: string };

export const keys = {
  app: (appId: string): Key => ({ pk: `APP#${appId}`, sk: 'APP' }),
  appName: (name: string): Key => ({ pk: `APPNAME#${name}`, sk: 'APPNAME' }),
  component: (appId: string, name: string): Key => ({ pk: `APP#${appId}`, sk: `COMPONENT#${name}` }),
  componentPrefix: 'COMPONENT#',
  install: (installId: string): Key => ({ pk: `INSTALL#${installId}`, sk: 'INSTALL' }),
  externalId: (externalId: string): Key => ({ pk: `EXTERNALID#${externalId}`, sk: 'EXTERNALID' }),
  event: (appId: string, eventId: string): Key => ({ pk: `EVENTS#APP#${appId}`, sk: `EVENT#${eventId}` }),
  eventPrefix: 'EVENT#',
  idempotency: (scope: string, key: string): Key => ({ pk: `IDEMPOTENCY#${scope}`, sk: `KEY#${key}` }),
  build: (buildId: string): Key => ({ pk: `BUILD#${buildId}`, sk: 'BUILD' }),
  /** One deploy at a time per install: held by a release or an execution until released or expired. */
  installLock: (installId: string): Key => ({ pk: `INSTALL#${installId}`, sk: 'LOCK' }),
  /** What is deployed of one component in one install. */
  deployedComponent: (installId: string, component: string): Key => ({
    pk: `INSTALL#${installId}`,
    sk: `DEPLOYED#${component}`,
  }),
  deployedPrefix: 'DEPLOYED#',
  /** A release: the builds it deploys, its strategy, its progress. */
  release: (releaseId: string): Key => ({ pk: `RELEASE#${releaseId}`, sk: 'RELEASE' }),
  /** One install's part in a release, sorted by wave so a wave is one Query. */
  releaseInstall: (releaseId: string, wave: number, installId: string): Key => ({
    pk: `RELEASE#${releaseId}`,
    sk: `${releaseWavePrefix(wave)}${installId}`,
  }),
  releaseInstallPrefix: 'WAVE#',
  /** A running wave's counter and the task token its workflow waits with. */
  releaseWave: (releaseId: string, wave: number): Key => ({
    pk: `RELEASE#${releaseId}`,
    sk: `WAVESTATE#${String(wave).padStart(5, '0')}`,
  }),
} as const;

/** The sort-key prefix of a release's installs in one wave; waves sort in order up to 99,999. */
export function releaseWavePrefix(wave: number): string {
  return `WAVE#${String(wave).padStart(5, '0')}#`;
}

/** Partitions of the gsi1 index. */
export const gsi1 = {
  /** Every app, sorted by name. */
  apps: 'APPS',
  /** An app's installs, oldest first (install ids sort by creation time). */
  installsOf: (appId: string) => `APP#${appId}#INSTALLS`,
  /** An install's events, by event id (creation time). */
  eventsOfInstall: (installId: string) => `EVENTS#INSTALL#${installId}`,
  /** A component's builds, by build id (creation time). */
  buildsOf: (appId: string, component: string) => `APP#${appId}#COMPONENT#${component}#BUILDS`,
  /** An app's releases, by release id (creation time). */
  releasesOf: (appId: string) => `APP#${appId}#RELEASES`,
} as const;

export const PAGE_LIMIT_DEFAULT = 25;
export const PAGE_LIMIT_MAX = 100;

export interface PageRequest {
  readonly limit?: number;
  readonly nextToken?: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly nextToken?: string;
}

/** The opaque token for where a Query stopped: base64url JSON of its LastEvaluatedKey. */
export function encodeToken(lastKey: Record<string, unknown> | undefined): string | undefined {
  if (!lastKey) return undefined;
  return Buffer.from(JSON.stringify(lastKey), 'utf8').toString('base64url');
}

/**
 * Decodes a token given back by a caller. It must be one this list handed out: an object of string
 * attributes, exactly `attributes`, in the partition the list queries (`partition` on `partitionAttribute`).
 */
export function decodeToken(
  token: string | undefined,
  attributes: readonly string[],
  partitionAttribute: string,
  partition: string,
): Record<string, string> | undefined {
  if (token === undefined) return undefined;
  const invalid = () =>
    new ValidationError('nextToken is not valid for this list', [
      { path: 'query.nextToken', message: 'pass back the nextToken this list returned, unchanged' },
    ]);
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) throw invalid();
  const entries = Object.entries(decoded);
  const sameShape =
    entries.length === attributes.length &&
    entries.every(([name, value]) => attributes.includes(name) && typeof value === 'string');
  if (!sameShape || (decoded as Record<string, string>)[partitionAttribute] !== partition) throw invalid();
  return decoded as Record<string, string>;
}

/** Strips the table's key attributes from an item before it leaves the store. */
export function withoutKeys<T extends Record<string, unknown>>(
  item: T,
): Omit<T, 'pk' | 'sk' | 'gsi1pk' | 'gsi1sk'> {
  const { pk: _pk, sk: _sk, gsi1pk: _g, gsi1sk: _gs, ...rest } = item;
  return rest;
}
