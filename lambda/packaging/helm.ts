/**
 * A Helm chart as `helm package` and `helm push` make it: the config is the JSON of Chart.yaml's
 * metadata (Helm's field order, unknown fields left out), the layer a tar.gz of the chart under
 * `<name>/`, honouring `.helmignore`. Unlike Helm's, the tar.gz is reproducible.
 */

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Document, isScalar, parseDocument } from 'yaml';
import { HELM_CHART_LAYER, HELM_CONFIG } from '../oci/media-types';
import { PackagingError, packDirectory } from './tar';

export interface HelmChartPackage {
  readonly name: string;
  readonly version: string;
  /** Chart.yaml's metadata as Helm writes it into the config blob. */
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly configMediaType: typeof HELM_CONFIG;
  readonly configBytes: Buffer;
  readonly layerMediaType: typeof HELM_CHART_LAYER;
  readonly layerBytes: Buffer;
  /** The annotations `helm push` sets on the manifest, less its timestamp. */
  readonly annotations: Readonly<Record<string, string>>;
  /** Relative paths of the files packed, sorted. */
  readonly files: readonly string[];
}

export interface HelmPackageOptions {
  /** Timestamp of every tar entry, seconds since the epoch. @default SOURCE_DATE_EPOCH, else 0 */
  readonly mtime?: number;
}

/** Helm's chart.Metadata fields in the order Helm marshals them; the strings among them. */
const METADATA_FIELDS = [
  'name',
  'home',
  'sources',
  'version',
  'description',
  'keywords',
  'maintainers',
  'icon',
  'apiVersion',
  'condition',
  'tags',
  'appVersion',
  'deprecated',
  'annotations',
  'kubeVersion',
  'dependencies',
  'type',
] as const;
const STRING_FIELDS = new Set([
  'name',
  'home',
  'version',
  'description',
  'icon',
  'apiVersion',
  'condition',
  'tags',
  'appVersion',
  'kubeVersion',
  'type',
]);
const MAINTAINER_FIELDS = ['name', 'email', 'url'] as const;
const DEPENDENCY_FIELDS = [
  'name',
  'version',
  'repository',
  'condition',
  'tags',
  'enabled',
  'import-values',
  'alias',
] as const;
/** SemVer 2, with Helm's leniency: an optional `v`, minor and patch may be left out. */
const IDENTIFIERS = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*';
const NUMBER = '(?:0|[1-9]\\d*)';
const SEMVER = new RegExp(`^v?${NUMBER}(?:\\.${NUMBER}){0,2}(?:-${IDENTIFIERS})?(?:\\+${IDENTIFIERS})?$`);
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Packages the chart in `dir`; refuses a missing Chart.yaml, or one without name or version. */
export async function packageHelmChart(
  dir: string,
  options: HelmPackageOptions = {},
): Promise<HelmChartPackage> {
  if (!existsSync(dir)) throw new PackagingError(`${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new PackagingError(`${dir} is not a directory`);
  const chartFile = join(dir, 'Chart.yaml');
  if (!existsSync(chartFile)) throw new PackagingError(`${chartFile} is missing; a Helm chart needs one`);
  const metadata = readChartMetadata(chartFile);
  const name = metadata.name;
  const version = metadata.version;
  if (typeof name !== 'string' || name === '') throw new PackagingError(`${chartFile} has no name`);
  if (typeof version !== 'string' || version === '') throw new PackagingError(`${chartFile} has no version`);
  if (!CHART_NAME.test(name)) {
    throw new PackagingError(`${chartFile}: name "${name}" must be letters, digits, ".", "_" or "-"`);
  }
  if (!SEMVER.test(version))
    throw new PackagingError(`${chartFile}: version "${version}" is not a SemVer version`);

  const ignore = helmIgnore(dir);
  const packed = await packDirectory(dir, {
    prefix: name,
    exclude: ignore,
    ...(options.mtime !== undefined && { mtime: options.mtime }),
  });
  const annotations: Record<string, string> = {
    'org.opencontainers.image.title': name,
    'org.opencontainers.image.version': version,
  };
  if (typeof metadata.description === 'string' && metadata.description !== '') {
    annotations['org.opencontainers.image.description'] = metadata.description;
  }
  return {
    name,
    version,
    metadata,
    configMediaType: HELM_CONFIG,
    configBytes: Buffer.from(JSON.stringify(metadata)),
    layerMediaType: HELM_CHART_LAYER,
    layerBytes: packed.bytes,
    annotations,
    files: packed.files,
  };
}

/** The tag `helm push` gives a version: OCI tags have no `+`, so it becomes `_`. */
export function helmTag(version: string): string {
  return version.replaceAll('+', '_');
}

/** Chart.yaml as Helm's chart.Metadata marshals it: known fields in Helm's order, empty ones left out. */
function readChartMetadata(chartFile: string): Record<string, unknown> {
  const document = parseDocument(readFileSync(chartFile, 'utf8'));
  if (document.errors.length > 0) {
    throw new PackagingError(`${chartFile} is not valid YAML: ${document.errors[0]!.message.split('\n')[0]}`);
  }
  const raw: unknown = document.toJS();
  if (raw === null || raw === undefined)
    throw new PackagingError(`${chartFile} is empty; it needs a name and version`);
  if (!isRecord(raw)) throw new PackagingError(`${chartFile} must be a YAML mapping`);
  const metadata: Record<string, unknown> = {};
  for (const field of METADATA_FIELDS) {
    let value = raw[field];
    if (STRING_FIELDS.has(field)) value = scalarText(document, field, value);
    else if (field === 'maintainers') value = objects(value, MAINTAINER_FIELDS);
    else if (field === 'dependencies') value = objects(value, DEPENDENCY_FIELDS);
    else if (field === 'annotations' && isRecord(value)) value = stringMap(value);
    if (!isEmpty(value)) metadata[field] = value;
  }
  return metadata;
}

/** A string field as written: `version: 1.10` is "1.10", not the number 1.1. */
function scalarText(document: Document, field: string, value: unknown): unknown {
  if (typeof value === 'string' || value === undefined || value === null) return value;
  const node = document.get(field, true);
  if (isScalar(node) && node.source !== undefined) return node.source;
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : value;
}

function objects(value: unknown, fields: readonly string[]): unknown {
  if (!Array.isArray(value)) return value;
  return value.map((item) => {
    if (!isRecord(item)) return item;
    const ordered: Record<string, unknown> = {};
    for (const field of fields) if (!isEmpty(item[field])) ordered[field] = item[field];
    return ordered;
  });
}

function stringMap(value: Record<string, unknown>): Record<string, string> {
  const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(keys.map((key) => [key, String(value[key])]));
}

function isEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === '' ||
    value === false ||
    (Array.isArray(value) && value.length === 0) ||
    (isRecord(value) && Object.keys(value).length === 0)
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface IgnoreRule {
  readonly negate: boolean;
  readonly directoryOnly: boolean;
  /** Matched against the whole relative path (rules with a `/`) or the base name only. */
  readonly wholePath: boolean;
  readonly pattern: RegExp;
}

/**
 * `.helmignore` as Helm reads it: one shell glob a line, `#` comments, `!` to negate, a trailing `/`
 * for directories only, a rule with a `/` matched against the whole path, else the base name; the
 * first rule that matches decides. Helm's default `templates/.?*` always applies.
 */
export function helmIgnore(dir: string): (path: string, isDirectory: boolean) => boolean {
  const file = join(dir, '.helmignore');
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split(/\r?\n/) : [];
  const rules = [...lines, 'templates/.?*'].flatMap((line) => {
    const rule = parseIgnoreRule(line);
    return rule ? [rule] : [];
  });
  return (path, isDirectory) => {
    for (const rule of rules) {
      if (rule.directoryOnly && !isDirectory) continue;
      const subject = rule.wholePath ? path : path.slice(path.lastIndexOf('/') + 1);
      if (rule.pattern.test(subject)) return !rule.negate;
    }
    return false;
  };
}

function parseIgnoreRule(line: string): IgnoreRule | undefined {
  let rule = line.trim();
  if (rule === '' || rule.startsWith('#')) return undefined;
  if (rule === '**') return undefined; // Helm refuses it; ignoring everything is never meant
  const negate = rule.startsWith('!');
  if (negate) rule = rule.slice(1);
  const directoryOnly = rule.endsWith('/');
  if (directoryOnly) rule = rule.slice(0, -1);
  const wholePath = rule.includes('/');
  if (rule.startsWith('/')) rule = rule.slice(1);
  if (rule === '') return undefined;
  return { negate, directoryOnly, wholePath, pattern: globToRegExp(rule) };
}

/** Go's filepath.Match: `*` and `?` never cross `/`, `[...]` classes with `^` to negate, `\` escapes. */
function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '\\' && i + 1 < glob.length) source += escapeRegExp(glob[++i]!);
    else if (char === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) source += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        const negated = body.startsWith('^');
        if (negated) body = body.slice(1);
        source += `[${negated ? '^' : ''}${body.replace(/[\]\\]/g, '\\$&')}]`;
        i = end;
      }
    } else source += escapeRegExp(char);
  }
  return new RegExp(`^${source}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
