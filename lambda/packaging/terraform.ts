/**
 * A Terraform module as Ferry's artifact: the layer a reproducible tar.gz of the module directory
 * (entries at the root; `.terraform/` and state files left out, since they hold provider binaries
 * and secrets), the config a JSON summary of the module: its files and the variables and outputs its
 * top-level `*.tf` / `*.tf.json` files declare.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TERRAFORM_CONFIG, TERRAFORM_MODULE_ARTIFACT, TERRAFORM_MODULE_LAYER } from '../oci/media-types';
import { PackagingError, packDirectory } from './tar';

export interface TerraformModuleConfig {
  readonly schemaVersion: 1;
  /** Every file in the layer, relative and sorted. */
  readonly files: readonly string[];
  /** Names of the module's input variables, sorted. */
  readonly variables: readonly string[];
  /** Names of the module's outputs, sorted. */
  readonly outputs: readonly string[];
}

export interface TerraformModulePackage {
  readonly artifactType: typeof TERRAFORM_MODULE_ARTIFACT;
  readonly config: TerraformModuleConfig;
  readonly configMediaType: typeof TERRAFORM_CONFIG;
  readonly configBytes: Buffer;
  readonly layerMediaType: typeof TERRAFORM_MODULE_LAYER;
  readonly layerBytes: Buffer;
}

export interface TerraformPackageOptions {
  /** Timestamp of every tar entry, seconds since the epoch. @default SOURCE_DATE_EPOCH, else 0 */
  readonly mtime?: number;
}

/** Packages the module in `dir`; refuses a directory with no `*.tf` file at its top. */
export async function packageTerraformModule(
  dir: string,
  options: TerraformPackageOptions = {},
): Promise<TerraformModulePackage> {
  if (!existsSync(dir)) throw new PackagingError(`${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new PackagingError(`${dir} is not a directory`);
  const moduleFiles = readdirSync(dir)
    .filter(
      (name) => (name.endsWith('.tf') || name.endsWith('.tf.json')) && statSync(join(dir, name)).isFile(),
    )
    .sort();
  if (moduleFiles.length === 0) {
    throw new PackagingError(`${dir} has no *.tf file; a Terraform module needs at least one`);
  }
  const variables = new Set<string>();
  const outputs = new Set<string>();
  for (const name of moduleFiles) {
    const file = join(dir, name);
    const declared = name.endsWith('.json') ? scanJson(file) : scanHcl(readFileSync(file, 'utf8'));
    for (const variable of declared.variables) variables.add(variable);
    for (const output of declared.outputs) outputs.add(output);
  }
  const packed = await packDirectory(dir, {
    exclude: excludedFromModule,
    ...(options.mtime !== undefined && { mtime: options.mtime }),
  });
  const config: TerraformModuleConfig = {
    schemaVersion: 1,
    files: packed.files,
    variables: [...variables].sort(),
    outputs: [...outputs].sort(),
  };
  return {
    artifactType: TERRAFORM_MODULE_ARTIFACT,
    config,
    configMediaType: TERRAFORM_CONFIG,
    configBytes: Buffer.from(JSON.stringify(config)),
    layerMediaType: TERRAFORM_MODULE_LAYER,
    layerBytes: packed.bytes,
  };
}

/** `.terraform/` (providers, modules) and state files never belong in a module package. */
export function excludedFromModule(path: string, isDirectory: boolean): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (isDirectory) return name === '.terraform';
  return /\.tfstate(\.backup)?$/.test(name) || name === '.terraform.tfstate.lock.info';
}

/** The `variable "x"` and `output "x"` blocks of HCL text, comments left out. */
export function scanHcl(text: string): { variables: string[]; outputs: string[] } {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*(#|\/\/).*$/gm, '');
  const names = (kind: string) =>
    [...code.matchAll(new RegExp(`^\\s*${kind}\\s+"([^"]+)"\\s*\\{`, 'gm'))].map((match) => match[1]!);
  return { variables: names('variable'), outputs: names('output') };
}

function scanJson(file: string): { variables: string[]; outputs: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new PackagingError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const keys = (field: string) => {
    if (typeof parsed !== 'object' || parsed === null) return [];
    const block = (parsed as Record<string, unknown>)[field];
    return typeof block === 'object' && block !== null && !Array.isArray(block) ? Object.keys(block) : [];
  };
  return { variables: keys('variable'), outputs: keys('output') };
}
