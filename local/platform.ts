/**
 * Local mode's platform: applies a component by writing what it would apply under the install's
 * directory (the ECS task definition and service, the Helm release and its rendered values, the
 * Terraform variables, the plugin's deploy environment); Terraform and plugin commands run for
 * real where their binaries exist. Destroying removes what apply wrote, after `terraform destroy`
 * (same module, state and data directory) or the plugin's destroy commands have run.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ApplyRequest, ApplyResult, DestroyRequest, Platform } from '../lambda/deploy/platform';
import { RegistryClient } from '../lambda/oci/client';
import { TERRAFORM_MODULE_LAYER } from '../lambda/oci/media-types';
import { parseReference } from '../lambda/oci/reference';
import { readTarGz } from '../lambda/packaging/tar';

const run = promisify(execFile);

export class LocalPlatform implements Platform {
  constructor(private readonly root: string) {}

  /**
   * Terraform for real: the module comes from the artifact synced into the install's registry, the
   * state stays in the install's directory, and `output -json` becomes the component's outputs.
   */
  private async applyTerraform(dir: string, request: ApplyRequest): Promise<ApplyResult> {
    const moduleDir = await pullModule(dir, request.artifact.uri);
    const terraform = terraformIn(dir, moduleDir, request.spec);
    try {
      await terraform('init', '-input=false', '-no-color');
      await terraform(
        'apply',
        '-input=false',
        '-auto-approve',
        '-no-color',
        `-state=${join(dir, 'terraform.tfstate')}`,
        `-var-file=${join(dir, 'terraform.tfvars.json')}`,
      );
      const { stdout } = await terraform('output', '-json', `-state=${join(dir, 'terraform.tfstate')}`);
      const outputs: Record<string, string> = {};
      const sensitiveOutputs: string[] = [];
      for (const [name, output] of Object.entries(
        JSON.parse(stdout) as Record<string, { value: unknown; sensitive: boolean }>,
      )) {
        outputs[name] = typeof output.value === 'string' ? output.value : JSON.stringify(output.value);
        if (output.sensitive) sensitiveOutputs.push(name);
      }
      return { outputs, sensitiveOutputs };
    } catch (error) {
      const failure = error as { stderr?: string; message: string };
      throw new Error(`terraform failed: ${lastLines(failure.stderr || failure.message)}`);
    }
  }

  /**
   * Removes the component: `terraform destroy` with the state apply left (nothing to do without
   * one), or the plugin's destroy commands when its spec has them; then every file apply wrote, and
   * the install's directory with its last component. A failed destroy keeps the files (and the
   * Terraform state) for the next attempt.
   */
  async destroy(request: DestroyRequest): Promise<void> {
    const installDir = join(this.root, request.install.id);
    const dir = join(installDir, request.component);
    const { spec } = request;
    if (spec.type === 'terraform') await this.destroyTerraform(dir, request);
    if (spec.type === 'custom' && spec.plugin.destroy) {
      mkdirSync(dir, { recursive: true });
      const { commands, environment } = spec.plugin.destroy;
      for (const [index, command] of commands.entries()) {
        try {
          await run('bash', ['-euo', 'pipefail', '-c', command], {
            cwd: dir,
            env: {
              ...process.env,
              ...environment,
              ...(request.artifact && { FERRY_ARTIFACT_URI: request.artifact.uri }),
            },
          });
        } catch (error) {
          const failure = error as { stderr?: string; code?: number; message: string };
          throw new Error(
            `destroy command ${index + 1} of ${commands.length} exited with ${failure.code ?? 'an error'}: ` +
              lastLines(failure.stderr || failure.message),
          );
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
    try {
      rmdirSync(installDir);
    } catch {
      // Other components of the install remain (or it is gone already).
    }
  }

  private async destroyTerraform(dir: string, request: DestroyRequest): Promise<void> {
    const state = join(dir, 'terraform.tfstate');
    if (!existsSync(state)) return; // never applied: nothing to destroy
    if (!(await run('terraform', ['version']).catch(() => undefined))) {
      throw new Error(`terraform is not on PATH: cannot destroy what ${state} records; it is kept`);
    }
    let moduleDir = join(dir, 'module');
    if (!existsSync(moduleDir)) {
      if (!request.artifact) {
        throw new Error(`the module applied with ${state} is gone and no artifact is recorded to pull it`);
      }
      moduleDir = await pullModule(dir, request.artifact.uri);
    }
    const variables = request.spec.type === 'terraform' ? request.spec.variables : {};
    writeFileSync(join(dir, 'terraform.tfvars.json'), `${JSON.stringify(variables, null, 2)}\n`);
    const terraform = terraformIn(dir, moduleDir, request.spec);
    try {
      await terraform('init', '-input=false', '-no-color');
      await terraform(
        'destroy',
        '-input=false',
        '-auto-approve',
        '-no-color',
        `-state=${state}`,
        `-var-file=${join(dir, 'terraform.tfvars.json')}`,
      );
    } catch (error) {
      const failure = error as { stderr?: string; message: string };
      throw new Error(`terraform destroy failed: ${lastLines(failure.stderr || failure.message)}`);
    }
  }

  async apply(request: ApplyRequest): Promise<ApplyResult> {
    const dir = join(this.root, request.install.id, request.component);
    mkdirSync(dir, { recursive: true });
    const write = (file: string, value: unknown) =>
      writeFileSync(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
    const { spec } = request;
    switch (spec.type) {
      case 'image':
      case 'dockerfile': {
        if (!spec.service) return { outputs: { image: request.artifact.uri } };
        const family = `${request.component}`;
        write('task-definition.json', {
          family,
          cpu: String(spec.service.cpu),
          memory: String(spec.service.memory),
          containerDefinitions: [
            {
              name: request.component,
              image: request.artifact.uri,
              essential: true,
              environment: Object.entries(spec.service.environment).map(([name, value]) => ({ name, value })),
              ...(spec.service.port !== undefined && {
                portMappings: [{ containerPort: Number(spec.service.port) }],
              }),
            },
          ],
        });
        write('service.json', {
          cluster: spec.service.cluster,
          serviceName: request.component,
          desiredCount: spec.service.desiredCount,
          subnets: spec.service.subnets,
          securityGroups: spec.service.securityGroups,
        });
        return {
          outputs: {
            serviceName: request.component,
            cluster: spec.service.cluster,
            image: request.artifact.uri,
          },
        };
      }
      case 'helm': {
        const releaseName = spec.releaseName ?? request.component;
        write('values.json', spec.values);
        write('release.json', {
          releaseName,
          namespace: spec.namespace,
          chart: request.artifact.chart ?? request.artifact.uri,
          cluster: spec.cluster ?? null,
        });
        return { outputs: { releaseName, namespace: spec.namespace } };
      }
      case 'terraform': {
        write('terraform.tfvars.json', spec.variables);
        const terraform = await run('terraform', ['version']).catch(() => undefined);
        if (!terraform) {
          throw new Error(
            `terraform is not on PATH: wrote ${join(dir, 'terraform.tfvars.json')}, applied nothing`,
          );
        }
        return this.applyTerraform(dir, request);
      }
      case 'custom': {
        const outputFile = join(dir, 'outputs.env');
        write('deploy.json', { image: spec.plugin.image, commands: spec.plugin.deploy.commands });
        for (const command of spec.plugin.deploy.commands) {
          await run('bash', ['-euo', 'pipefail', '-c', command], {
            cwd: dir,
            env: {
              ...process.env,
              ...spec.plugin.deploy.environment,
              FERRY_OUTPUT_ENV: outputFile,
              FERRY_ARTIFACT_URI: request.artifact.uri,
            },
          });
        }
        const outputs: Record<string, string> = {};
        if (existsSync(outputFile)) {
          for (const line of readFileSync(outputFile, 'utf8').split('\n')) {
            const match = /^([A-Za-z_][\w-]*)=(.*)$/.exec(line);
            if (match) outputs[match[1]] = match[2];
          }
        }
        return { outputs };
      }
    }
  }
}

/** Pulls the Terraform module out of the artifact at `uri` into `dir/module`; returns that folder. */
async function pullModule(dir: string, uri: string): Promise<string> {
  const reference = parseReference(uri);
  const registry = new RegistryClient({ registry: reference.registry, insecure: true });
  const manifest = JSON.parse(
    (
      await registry.getManifest(reference.repository, reference.digest ?? reference.tag ?? 'latest')
    ).bytes.toString('utf8'),
  ) as { layers: { digest: string; mediaType: string }[] };
  const layer = manifest.layers.find((candidate) => candidate.mediaType === TERRAFORM_MODULE_LAYER);
  if (!layer) throw new Error(`${uri} holds no Terraform module layer`);
  const chunks: Buffer[] = [];
  for await (const chunk of await registry.getBlob(reference.repository, layer.digest))
    chunks.push(chunk as Buffer);
  const moduleDir = join(dir, 'module');
  rmSync(moduleDir, { recursive: true, force: true });
  for (const entry of await readTarGz(Buffer.concat(chunks))) {
    const target = join(moduleDir, entry.name);
    if (!target.startsWith(`${moduleDir}/`) && target !== moduleDir)
      throw new Error(`module entry ${entry.name} escapes the module`);
    if (entry.type === 'directory') mkdirSync(target, { recursive: true });
    else {
      mkdirSync(join(target, '..'), { recursive: true });
      writeFileSync(target, entry.content, { mode: entry.mode });
    }
  }
  return moduleDir;
}

/** Runs terraform in `moduleDir` with the component's environment and its data directory under `dir`. */
function terraformIn(dir: string, moduleDir: string, spec: ApplyRequest['spec']) {
  const env = {
    ...process.env,
    ...(spec.type === 'terraform' ? spec.environment : {}),
    TF_IN_AUTOMATION: '1',
    TF_DATA_DIR: join(dir, '.terraform'),
  };
  return (...args: string[]) =>
    run('terraform', [`-chdir=${moduleDir}`, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join(' ');
}
