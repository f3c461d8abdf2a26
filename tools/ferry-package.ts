/**
 * ferry-package: packages Helm charts and Terraform modules as OCI artifacts, copies images between
 * registries and describes manifests. The build agent runs it (bundled by esbuild into one .cjs);
 * it writes what it pushed to an env file for the next step. Exit 0 on success, 1 when the input or
 * a registry refuses (one line on stderr saying which and why), 2 on a usage error.
 */

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { describeManifest, type ManifestDescription, pushArtifact } from '../lambda/oci/artifact';
import { RegistryClient, type RegistryCredentials, RegistryError } from '../lambda/oci/client';
import { CopyError, copyImage } from '../lambda/oci/copy';
import { isImageManifest, TERRAFORM_MODULE_LAYER } from '../lambda/oci/media-types';
import {
  formatReference,
  type ImageReference,
  InvalidReferenceError,
  manifestReference,
  parseReference,
} from '../lambda/oci/reference';
import { helmTag, packageHelmChart } from '../lambda/packaging/helm';
import { PackagingError, readTarGz } from '../lambda/packaging/tar';
import { packageTerraformModule } from '../lambda/packaging/terraform';

const USAGE = [
  'usage: ferry-package [--] helm <chart-dir> --to <registry>/<repository>[:<tag>] [--env-file <file>]',
  '       ferry-package terraform <module-dir> --to <registry>/<repository>:<tag> [--env-file <file>]',
  '       ferry-package copy <source-ref> --to <registry>/<repository>[:<tag>] [--env-file <file>]',
  '       ferry-package inspect <ref> [--env-file <file>]',
  '       ferry-package pull-terraform-module <ref> --to <new-directory> [--env-file <file>]',
  'env:   FERRY_REGISTRY_INSECURE=1 (http), FERRY_REGISTRY_USERNAME/PASSWORD (destination),',
  '       FERRY_SOURCE_USERNAME/PASSWORD (copy source)',
].join('\n');

/** The command line is wrong: exit 2 with the usage. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface Arguments {
  readonly command: string;
  readonly positional: readonly string[];
  readonly to: string | undefined;
  readonly envFile: string | undefined;
}

interface Outcome {
  readonly reference: ImageReference;
  readonly description: ManifestDescription;
  readonly summary: string;
}

function parseArguments(argv: readonly string[]): Arguments {
  const positional: string[] = [];
  const options: Record<string, string> = {};
  // A leading `--` is allowed and skipped: Node 20 reads `--env-file` anywhere on its own command line
  // (and exits when the file does not exist yet) unless a `--` comes first.
  for (let i = argv[0] === '--' ? 1 : 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    if (arg.startsWith('--')) {
      const equals = arg.indexOf('=');
      const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
      if (name !== 'to' && name !== 'env-file') throw new UsageError(`unknown option --${name}`);
      const value = equals === -1 ? argv[++i] : arg.slice(equals + 1);
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
      options[name] = value;
    } else positional.push(arg);
  }
  const [command, ...rest] = positional;
  if (command === undefined) throw new UsageError('no command given');
  return { command, positional: rest, to: options.to, envFile: options['env-file'] };
}

function one(args: Arguments, what: string): string {
  if (args.positional.length !== 1) throw new UsageError(`${args.command} takes one ${what}`);
  return args.positional[0]!;
}

function reference(text: string, what: string): ImageReference {
  try {
    return parseReference(text);
  } catch (error) {
    if (error instanceof InvalidReferenceError) throw new UsageError(`${what}: ${error.message}`);
    throw error;
  }
}

function destination(args: Arguments): ImageReference {
  if (args.to === undefined) throw new UsageError(`${args.command} needs --to <registry>/<repository>:<tag>`);
  const to = reference(args.to, '--to');
  if (to.digest !== undefined) throw new UsageError(`--to names a digest; give a tag to push to`);
  return to;
}

function credentials(env: NodeJS.ProcessEnv, prefix: string): RegistryCredentials | undefined {
  const username = env[`${prefix}_USERNAME`];
  const password = env[`${prefix}_PASSWORD`];
  if (!username && !password) return undefined;
  if (!username || !password) {
    throw new UsageError(`${prefix}_USERNAME and ${prefix}_PASSWORD must be set together`);
  }
  return { username, password };
}

function client(registry: string, env: NodeJS.ProcessEnv, prefix: string): RegistryClient {
  const insecure = env.FERRY_REGISTRY_INSECURE === '1' || env.FERRY_REGISTRY_INSECURE === 'true';
  const creds = credentials(env, prefix);
  return new RegistryClient({ registry, insecure, ...(creds && { credentials: creds }) });
}

function described(description: ManifestDescription): string {
  return `${description.digest} (${description.mediaType}, ${description.size} bytes)`;
}

async function helm(args: Arguments, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const dir = one(args, 'chart directory');
  const to = destination(args);
  const chart = await packageHelmChart(dir);
  const tag = to.tag ?? helmTag(chart.version);
  const description = await pushArtifact(client(to.registry, env, 'FERRY_REGISTRY'), to.repository, tag, {
    config: { mediaType: chart.configMediaType, bytes: chart.configBytes },
    layers: [{ mediaType: chart.layerMediaType, bytes: chart.layerBytes }],
    annotations: chart.annotations,
  });
  const target = formatReference({ ...to, tag });
  return {
    reference: to,
    description,
    summary: `pushed helm chart ${chart.name} ${chart.version} to ${target}: ${described(description)}`,
  };
}

async function terraform(args: Arguments, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const dir = one(args, 'module directory');
  const to = destination(args);
  if (to.tag === undefined) throw new UsageError('--to names no tag; give <registry>/<repository>:<tag>');
  const module = await packageTerraformModule(dir);
  const description = await pushArtifact(client(to.registry, env, 'FERRY_REGISTRY'), to.repository, to.tag, {
    artifactType: module.artifactType,
    config: { mediaType: module.configMediaType, bytes: module.configBytes },
    layers: [{ mediaType: module.layerMediaType, bytes: module.layerBytes }],
  });
  const counts = `${module.config.variables.length} variables, ${module.config.outputs.length} outputs`;
  const target = formatReference(to);
  return {
    reference: to,
    description,
    summary: `pushed terraform module ${dir} (${counts}) to ${target}: ${described(description)}`,
  };
}

async function copy(args: Arguments, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const from = reference(one(args, 'source reference'), 'source');
  const to = destination(args);
  const tag = to.tag ?? from.tag;
  if (tag === undefined) throw new UsageError('--to names no tag and the source has none to keep');
  const description = await copyImage(
    client(from.registry, env, 'FERRY_SOURCE'),
    from.repository,
    manifestReference(from),
    client(to.registry, env, 'FERRY_REGISTRY'),
    to.repository,
    tag,
  );
  const target = formatReference({ ...to, tag });
  return {
    reference: to,
    description,
    summary: `copied ${formatReference(from)} to ${target}: ${described(description)}`,
  };
}

async function inspect(args: Arguments, env: NodeJS.ProcessEnv): Promise<Outcome> {
  if (args.to !== undefined) throw new UsageError('inspect takes no --to');
  const ref = reference(one(args, 'reference'), 'reference');
  const description = await describeManifest(
    client(ref.registry, env, 'FERRY_REGISTRY'),
    ref.repository,
    manifestReference(ref),
  );
  return { reference: ref, description, summary: `${formatReference(ref)} is ${described(description)}` };
}

/**
 * Unpacks the Terraform module artifact at `ref` (as `terraform` pushed it) into a new directory:
 * what the deploy runner applies. The manifest and the layer are checked against their digests; an
 * entry that would land outside the directory is refused.
 */
async function pullTerraformModule(args: Arguments, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const ref = reference(one(args, 'reference'), 'reference');
  if (args.to === undefined) throw new UsageError('pull-terraform-module needs --to <new-directory>');
  const target = resolve(args.to);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new UsageError(`--to ${args.to} is not empty; give a new directory`);
  }
  const registry = client(ref.registry, env, 'FERRY_REGISTRY');
  const manifest = await registry.getManifest(ref.repository, manifestReference(ref));
  const name = formatReference(ref);
  const parsed = isImageManifest(manifest.mediaType)
    ? (JSON.parse(manifest.bytes.toString('utf8')) as { layers?: { mediaType?: string; digest?: string }[] })
    : {};
  const layer = parsed.layers?.find((candidate) => candidate.mediaType === TERRAFORM_MODULE_LAYER);
  if (layer?.digest === undefined) {
    throw new PackagingError(
      `${name} is not a Terraform module artifact: it has no ${TERRAFORM_MODULE_LAYER} layer`,
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of await registry.getBlob(ref.repository, layer.digest))
    chunks.push(chunk as Buffer);
  const entries = await readTarGz(Buffer.concat(chunks));
  let files = 0;
  for (const entry of entries) {
    const path = resolve(target, entry.name);
    const inside = relative(target, path);
    if (isAbsolute(entry.name) || inside.startsWith('..') || isAbsolute(inside)) {
      throw new PackagingError(
        `${name}: module entry ${JSON.stringify(entry.name)} lands outside the module`,
      );
    }
    if (entry.type === 'directory') mkdirSync(path, { recursive: true });
    else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, entry.content, { mode: entry.mode & 0o111 ? 0o755 : 0o644 });
      files++;
    }
  }
  mkdirSync(target, { recursive: true });
  return {
    reference: ref,
    description: { digest: manifest.digest, size: manifest.bytes.length, mediaType: manifest.mediaType },
    summary: `pulled terraform module ${name} (${files} files) into ${args.to}`,
  };
}

const COMMANDS: Record<string, (args: Arguments, env: NodeJS.ProcessEnv) => Promise<Outcome>> = {
  helm,
  terraform,
  copy,
  inspect,
  'pull-terraform-module': pullTerraformModule,
};

function envFileLines(outcome: Outcome): string {
  const { reference: ref, description } = outcome;
  return [
    `ARTIFACT_DIGEST=${description.digest}`,
    `ARTIFACT_SIZE=${description.size}`,
    `ARTIFACT_MEDIA_TYPE=${description.mediaType}`,
    `ARTIFACT_URI=${ref.registry}/${ref.repository}@${description.digest}`,
    '',
  ].join('\n');
}

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const args = parseArguments(argv);
    const command = COMMANDS[args.command];
    if (!command) throw new UsageError(`unknown command "${args.command}"`);
    const outcome = await command(args, env);
    if (args.envFile !== undefined) {
      try {
        writeFileSync(args.envFile, envFileLines(outcome));
      } catch (error) {
        throw new PackagingError(`cannot write the env file ${args.envFile}: ${(error as Error).message}`);
      }
    }
    process.stdout.write(`${outcome.summary}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message ? `ferry-package: ${error.message}\n` : ''}${USAGE}\n`);
      return error.message ? 2 : 0;
    }
    const known = [RegistryError, PackagingError, CopyError, InvalidReferenceError].some(
      (kind) => error instanceof kind,
    );
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(
      `ferry-package: ${known ? '' : 'unexpected error: '}${message.replace(/\s*\n\s*/g, ' ')}\n`,
    );
    return 1;
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`ferry-package: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
