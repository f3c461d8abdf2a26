// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the expected strings are shell text
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  NoSuchKey,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import * as tar from 'tar-stream';
import { parse } from 'yaml';
import type { Buildspec } from '../../../lambda/build/buildspec';
import type { ApplyRequest } from '../../../lambda/deploy/platform';
import {
  BACKEND_OVERRIDE_FILE,
  HELM_VERSION,
  outputsKeyFor,
  type RunnerBuild,
  RunnerInputError,
  type RunnerOptions,
  RunnerOutputsError,
  readRunnerOutputs,
  runnerBuild,
  terraformStateKey,
} from '../../../lambda/deploy/runner';
import type { Install } from '../../../lambda/domain/control-plane';
import { ComponentSpec } from '../../../lambda/domain/schemas';
import { artifactManifest } from '../../../lambda/oci/artifact';
import {
  HELM_CHART_LAYER,
  OCI_IMAGE_MANIFEST,
  TERRAFORM_MODULE_LAYER,
} from '../../../lambda/oci/media-types';
import { deterministicGzip } from '../../../lambda/packaging/tar';
import { packageTerraformModule } from '../../../lambda/packaging/terraform';
import { sessionNameFor } from '../../../lambda/shared/install-role';
import { runBuildspec } from '../../../local/build-agent';
import { ROOT, TSX } from '../../support/processes';

// ---- fixtures ----------------------------------------------------------------------------------

const install: Install = {
  id: 'inst_01abc',
  appId: 'app_1',
  accountId: '111122223333',
  region: 'eu-west-1',
  inputs: {},
  sensitiveInputs: [],
  externalId: 'ext-id-of-install',
  status: 'connected',
  version: 2,
  createdAt: '2026-11-24T00:00:00.000Z',
  updatedAt: '2026-11-24T00:00:00.000Z',
};
const roleArn = 'arn:aws:iam::111122223333:role/ferry.acme.inst_01abc';
const registryHost = '111122223333.dkr.ecr.eu-west-1.amazonaws.com';
const digest = `sha256:${'c'.repeat(64)}`;
const options: RunnerOptions = {
  tenant: 'acme',
  outputsBucket: 'ferry-acme-outputs',
  outputsKey: 'outputs/dep_01/web.json',
  externalId: 'ext-id-of-install',
  roleArn,
  stateBucket: 'ferry-acme-inst-state-1a2b3c',
};

const helmSource = {
  type: 'helm',
  chart: { kind: 'source', source: { repo: 'https://github.com/acme/charts.git', path: 'web' } },
  cluster: 'main',
  namespace: 'shop',
  values: { replicas: 2, image: { tag: '1.2.3' } },
  valuesFiles: ['values-prod.yaml'],
};
const helmPrebuilt = {
  type: 'helm',
  chart: { kind: 'prebuilt', repo: 'https://charts.bitnami.com/bitnami/', name: 'redis', version: '19.0.0' },
  cluster: 'arn:aws:eks:eu-west-1:111122223333:cluster/main',
  releaseName: 'cache',
};
const terraform = {
  type: 'terraform',
  source: { repo: 'https://github.com/acme/infra.git', path: 'db' },
  terraformVersion: '1.11.4',
  variables: { name: 'shop', size: 2 },
  environment: { TF_LOG: 'WARN' },
};
const custom = {
  type: 'custom',
  plugin: {
    image: 'public.ecr.aws/acme/ferry-plugin:1.0',
    build: { commands: ['make artifact'] },
    deploy: { commands: ['./deploy.sh', 'echo done'], environment: { STAGE: 'prod' } },
  },
};

function request(spec: unknown, artifact?: ApplyRequest['artifact'], component = 'web'): ApplyRequest {
  return {
    install,
    deployId: 'dep_01',
    component,
    spec: ComponentSpec.parse(spec),
    artifact: artifact ?? { uri: `${registryHost}/ferry/shop/${component}@${digest}`, digest },
  };
}

function prebuiltRequest(): ApplyRequest {
  return request(helmPrebuilt, {
    uri: 'https://charts.bitnami.com/bitnami/',
    chart: { repo: 'https://charts.bitnami.com/bitnami/', name: 'redis', version: '19.0.0' },
  });
}

function environmentOf(build: RunnerBuild): Record<string, string> {
  return Object.fromEntries(build.environment.map((variable) => [variable.Name, variable.Value]));
}

function buildspecOf(build: RunnerBuild): Buildspec {
  return parse(build.buildspec) as Buildspec;
}

function commandsOf(build: RunnerBuild): string[] {
  const { install: installPhase, pre_build, build: buildPhase } = buildspecOf(build).phases;
  return [installPhase, pre_build, buildPhase].flatMap((phase) => phase?.commands ?? []);
}

/** Every request the runner serves, apply and destroy. */
function allBuilds(): [string, RunnerBuild][] {
  const builds: [string, RunnerBuild][] = [];
  for (const action of ['apply', 'destroy'] as const) {
    builds.push(
      [`helm source ${action}`, runnerBuild(request(helmSource), { ...options, action })],
      [`helm prebuilt ${action}`, runnerBuild(prebuiltRequest(), { ...options, action })],
      [
        `helm oci prebuilt ${action}`,
        runnerBuild(
          request(
            {
              ...helmPrebuilt,
              chart: { ...helmPrebuilt.chart, repo: 'oci://registry-1.docker.io/bitnamicharts' },
            },
            { uri: 'oci://registry-1.docker.io/bitnamicharts' },
          ),
          { ...options, action },
        ),
      ],
      [`terraform ${action}`, runnerBuild(request(terraform), { ...options, action })],
      [`custom ${action}`, runnerBuild(request(custom), { ...options, action })],
    );
  }
  return builds;
}

/** Shell text that would run something if a value reached a command line unquoted. */
function evilFor(canary: string): string {
  return `$(touch ${canary})\`touch ${canary}\`"; touch ${canary}; echo "'; touch ${canary}; '\\`;
}

// ---- the generated build -----------------------------------------------------------------------

describe('runnerBuild', () => {
  it('gives Step Functions its CodeBuild overrides: a 0.2 buildspec in bash, PLAINTEXT variables', () => {
    const build = runnerBuild(request(helmSource), options);
    const buildspec = buildspecOf(build);
    expect(buildspec.version).toBe('0.2');
    expect(buildspec.env).toEqual({ shell: 'bash' });
    expect(build.environment.every((variable) => variable.Type === 'PLAINTEXT')).toBe(true);
    expect(build.image).toBeUndefined();
    expect(environmentOf(build)).toMatchObject({
      FERRY_ACTION: 'apply',
      FERRY_DEPLOY_ID: 'dep_01',
      FERRY_COMPONENT: 'web',
      FERRY_INSTALL_ID: 'inst_01abc',
      FERRY_INSTALL_ACCOUNT: '111122223333',
      FERRY_INSTALL_REGION: 'eu-west-1',
      FERRY_INSTALL_ROLE_ARN: roleArn,
      FERRY_EXTERNAL_ID: 'ext-id-of-install',
      FERRY_SESSION_NAME: sessionNameFor('dep_01'),
      FERRY_OUTPUTS_BUCKET: 'ferry-acme-outputs',
      FERRY_OUTPUTS_KEY: 'outputs/dep_01/web.json',
    });
  });

  it('starts every command with set -euo pipefail, never traces, and every command is valid bash', () => {
    for (const [name, build] of allBuilds()) {
      expect(buildspecOf(build).env).not.toHaveProperty('exported-variables');
      for (const command of commandsOf(build)) {
        expect({ name, start: command.split('\n')[0] }).toEqual({ name, start: 'set -euo pipefail' });
        expect(command).not.toMatch(/set -[a-z]*x|set -o xtrace/);
        expect(() => execFileSync('bash', ['-n', '-c', command], { stdio: 'pipe' })).not.toThrow();
      }
    }
  });

  it('keeps every spec value out of the buildspec: two specs of a kind give the same text', () => {
    const canary = '/tmp/never';
    const evil = evilFor(canary);
    const pairs: [ApplyRequest, ApplyRequest][] = [
      [
        request(helmSource),
        request(
          {
            ...helmSource,
            cluster: 'other-cluster',
            namespace: 'evil',
            releaseName: 'x1',
            values: { evil },
            valuesFiles: [evil, 's3://bucket/v.yaml', 'https://example.com/v.yaml'],
          },
          undefined,
          'api',
        ),
      ],
      [
        request(terraform),
        request({ ...terraform, variables: { evil }, environment: { EVIL: evil } }, undefined, 'db'),
      ],
      [
        request(custom),
        request({
          ...custom,
          plugin: { ...custom.plugin, deploy: { commands: [evil, 'x', 'y'], environment: { EVIL: evil } } },
        }),
      ],
    ];
    for (const [first, second] of pairs) {
      const a = runnerBuild(first, options);
      const b = runnerBuild(second, { ...options, outputsKey: 'outputs/other/key.json' });
      expect(b.buildspec).toBe(a.buildspec);
      expect(b.buildspec).not.toContain('touch');
      expect(Object.values(environmentOf(b)).some((value) => value.includes(evil))).toBe(true);
    }
  });

  it('assumes the install role itself: its ARN, the ExternalId and a session named after the deploy', () => {
    for (const [name, build] of allBuilds()) {
      if (name === 'custom destroy') continue;
      const assume = buildspecOf(build).phases.pre_build?.commands[0] ?? '';
      expect(assume).toContain('aws sts assume-role --role-arn "$FERRY_INSTALL_ROLE_ARN"');
      expect(assume).toContain(
        '--external-id "$FERRY_EXTERNAL_ID" --role-session-name "$FERRY_SESSION_NAME"',
      );
      expect(assume).toContain('--duration-seconds 3600');
      expect(assume).toContain('export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN');
      expect(assume).not.toMatch(/echo[^\n]*\$(credentials|AWS_SECRET|AWS_SESSION|key|secret|token)/);
    }
  });

  it('deploys a source chart from the synced OCI artifact, logging helm into the install registry', () => {
    const build = runnerBuild(request(helmSource), options);
    expect(environmentOf(build)).toMatchObject({
      FERRY_EKS_CLUSTER: 'main',
      FERRY_HELM_RELEASE: 'web',
      FERRY_HELM_NAMESPACE: 'shop',
      FERRY_CHART_REF: `${registryHost}/ferry/shop/web@${digest}`,
      FERRY_REGISTRY_HOST: registryHost,
      FERRY_HELM_VALUES: JSON.stringify(helmSource.values),
      FERRY_HELM_VALUES_FILE_COUNT: '1',
      FERRY_HELM_VALUES_FILE_0: 'values-prod.yaml',
    });
    const text = commandsOf(build).join('\n');
    expect(text).toContain(`!= "v${HELM_VERSION}"`);
    expect(text).toContain(
      'aws eks update-kubeconfig --name "$FERRY_EKS_CLUSTER" --region "$FERRY_INSTALL_REGION"',
    );
    expect(text).toContain('| helm registry login --username AWS --password-stdin "$FERRY_REGISTRY_HOST"');
    expect(text).toContain(
      'helm pull --untar --untardir "$FERRY_STATE_DIR/chart" -- "oci://$FERRY_CHART_REF"',
    );
    expect(text).toContain('helm upgrade --install --namespace "$FERRY_HELM_NAMESPACE" --create-namespace');
    expect(text).toContain('--atomic --wait --timeout 15m "$@" -- "$FERRY_HELM_RELEASE" "$FERRY_CHART_DIR"');
  });

  it('deploys a prebuilt chart from its repository by name and version, the release named as given', () => {
    const build = runnerBuild(prebuiltRequest(), options);
    const env = environmentOf(build);
    expect(env).toMatchObject({
      FERRY_EKS_CLUSTER: 'main',
      FERRY_HELM_RELEASE: 'cache',
      FERRY_HELM_NAMESPACE: 'default',
      FERRY_CHART_REPO: 'https://charts.bitnami.com/bitnami',
      FERRY_CHART_NAME: 'redis',
      FERRY_CHART_VERSION: '19.0.0',
      FERRY_HELM_VALUES_FILE_COUNT: '0',
    });
    expect(env.FERRY_CHART_REF).toBeUndefined();
    const text = commandsOf(build).join('\n');
    expect(text).toContain('--repo "$FERRY_CHART_REPO" --version "$FERRY_CHART_VERSION"');
    expect(text).not.toContain('helm registry login');
  });

  it('uninstalls a release to destroy it, and writes no outputs', () => {
    const build = runnerBuild(request(helmSource), { ...options, action: 'destroy' });
    const text = buildspecOf(build).phases.build.commands.join('\n');
    expect(text).toContain('helm uninstall --namespace "$FERRY_HELM_NAMESPACE" --wait --ignore-not-found');
    expect(text).not.toContain('helm upgrade');
    expect(text).toContain(`'{"outputs":{},"sensitive":[]}'`);
  });

  it('refuses a chart it cannot place: no cluster, a cluster elsewhere, a values file outside the chart', () => {
    const cases: [unknown, string][] = [
      [{ ...helmSource, cluster: undefined }, 'spec.cluster is required in AWS'],
      [
        { ...helmSource, cluster: 'arn:aws:eks:us-east-1:111122223333:cluster/main' },
        'is not a cluster of the install',
      ],
      [{ ...helmSource, cluster: '--kubeconfig=/x' }, 'is not an EKS cluster name or ARN'],
      [{ ...helmSource, valuesFiles: ['../secrets.yaml'] }, "spec.valuesFiles[0] '../secrets.yaml' must be"],
      [{ ...helmSource, valuesFiles: ['/etc/passwd'] }, 'spec.valuesFiles[0]'],
      [{ ...helmSource, valuesFiles: ['a.yaml', 'ftp://x/v.yaml'] }, 'spec.valuesFiles[1]'],
    ];
    for (const [spec, message] of cases) {
      expect(() => runnerBuild(request(spec), options)).toThrow(RunnerInputError);
      expect(() => runnerBuild(request(spec), options)).toThrow(message);
    }
  });

  it('applies terraform with its version, state in the install bucket and a plan applied as planned', () => {
    const build = runnerBuild(request(terraform, undefined, 'db'), options);
    expect(environmentOf(build)).toMatchObject({
      TF_LOG: 'WARN',
      FERRY_TERRAFORM_VERSION: '1.11.4',
      FERRY_TF_STATE_BUCKET: 'ferry-acme-inst-state-1a2b3c',
      FERRY_TF_STATE_KEY: terraformStateKey('db'),
      FERRY_TF_STATE_REGION: 'eu-west-1',
      FERRY_TF_VARIABLES: JSON.stringify(terraform.variables),
      FERRY_ARTIFACT_URI: `${registryHost}/ferry/shop/db@${digest}`,
    });
    const text = buildspecOf(build).phases.build.commands.join('\n');
    expect(text).toContain(`' -- pull-terraform-module "$FERRY_ARTIFACT_URI" --to "$FERRY_MODULE_DIR"'`);
    expect(text).toContain(BACKEND_OVERRIDE_FILE);
    expect(text).toContain('init -input=false -no-color');
    expect(text).toContain('plan -input=false -no-color');
    expect(text).toContain('-out="$FERRY_STATE_DIR/ferry.tfplan"');
    expect(text).toContain('apply -input=false -no-color "$FERRY_STATE_DIR/ferry.tfplan"');
    expect(text).toContain('output -json');
    const destroy = runnerBuild(request(terraform), { ...options, action: 'destroy' });
    const destroyText = buildspecOf(destroy).phases.build.commands.join('\n');
    expect(destroyText).toContain('plan -destroy -input=false');
    expect(destroyText).not.toContain('output -json');
  });

  it('refuses terraform it cannot lock, without a state bucket, or with the runner’s own environment', () => {
    const cases: [unknown, RunnerOptions, string][] = [
      [
        { ...terraform, terraformVersion: '1.9.8' },
        options,
        'spec.terraformVersion 1.9.8 is older than 1.10.0',
      ],
      [terraform, { ...options, stateBucket: undefined }, 'options.stateBucket is required for terraform'],
      [terraform, { ...options, stateBucket: 'Bad_Bucket' }, "options.stateBucket 'Bad_Bucket'"],
      [
        { ...terraform, environment: { AWS_REGION: 'us-east-1' } },
        options,
        'spec.environment.AWS_REGION may not',
      ],
      [{ ...terraform, environment: { PATH: '/evil' } }, options, 'spec.environment.PATH may not'],
      [
        { ...terraform, environment: { TF_CLI_ARGS_init: '-backend-config=bucket=x' } },
        options,
        'spec.environment.TF_CLI_ARGS_init may not',
      ],
    ];
    for (const [spec, given, message] of cases) {
      expect(() => runnerBuild(request(spec), given)).toThrow(message);
    }
  });

  it("runs a custom plugin's deploy in the plugin's image, its commands passed as variables", () => {
    const build = runnerBuild(request(custom), options);
    expect(build.image).toBe('public.ecr.aws/acme/ferry-plugin:1.0');
    expect(environmentOf(build)).toMatchObject({
      STAGE: 'prod',
      FERRY_PLUGIN_IMAGE: 'public.ecr.aws/acme/ferry-plugin:1.0',
      FERRY_PLUGIN_COMMAND_COUNT: '2',
      FERRY_PLUGIN_COMMAND_0: './deploy.sh',
      FERRY_PLUGIN_COMMAND_1: 'echo done',
    });
    expect(() =>
      runnerBuild(
        request({
          ...custom,
          plugin: { ...custom.plugin, deploy: { commands: ['x'], environment: { FERRY_OUTPUT_ENV: '/x' } } },
        }),
        options,
      ),
    ).toThrow('spec.plugin.deploy.environment.FERRY_OUTPUT_ENV may not be set');
  });

  it('destroys nothing for a custom plugin, whose spec has no destroy step, and says so', () => {
    const build = runnerBuild(request(custom), { ...options, action: 'destroy' });
    expect(build.image).toBeUndefined();
    const text = commandsOf(build).join('\n');
    expect(text).toContain('has no destroy step: nothing to destroy');
    expect(text).not.toContain('assume-role');
    expect(text).not.toContain('FERRY_PLUGIN_COMMAND');
  });

  it("runs a custom plugin's destroy step, when it has one, as it runs its deploy step", () => {
    const withDestroy = {
      ...custom,
      plugin: { ...custom.plugin, destroy: { commands: ['./teardown.sh'], environment: { STAGE: 'gone' } } },
    };
    const build = runnerBuild(request(withDestroy), { ...options, action: 'destroy' });
    expect(build.image).toBe(custom.plugin.image);
    const variables = Object.fromEntries(build.environment.map((v) => [v.Name, v.Value]));
    expect(variables).toMatchObject({
      FERRY_PLUGIN_COMMAND_COUNT: '1',
      FERRY_PLUGIN_COMMAND_0: './teardown.sh',
      STAGE: 'gone',
      FERRY_ACTION: 'destroy',
    });
    expect(commandsOf(build).join('\n')).toContain('assume-role');
  });

  it('refuses what the runner does not deploy and options that do not fit the install', () => {
    const image = { type: 'image', image: { uri: 'docker.io/library/nginx:1.27' } };
    expect(() => runnerBuild(request(image), options)).toThrow(
      "spec.type 'image' is not deployed by the deploy runner",
    );
    const cases: [Partial<RunnerOptions>, string][] = [
      [{ roleArn: 'arn:aws:iam::444455556666:role/ferry.acme.inst_01abc' }, 'options.roleArn'],
      [{ roleArn: 'arn:aws:iam::111122223333:role/ferry.globex.inst_01abc' }, 'options.roleArn'],
      [{ outputsKey: 'state/x.json' }, "options.outputsKey 'state/x.json' must be a key under outputs/"],
      [{ outputsKey: 'outputs/../x.json' }, 'options.outputsKey'],
      [{ outputsBucket: 'NO' }, 'options.outputsBucket'],
      [{ externalId: '' }, 'options.externalId is empty'],
    ];
    for (const [given, message] of cases) {
      expect(() => runnerBuild(request(helmSource), { ...options, ...given })).toThrow(
        `deploy dep_01 of web to install inst_01abc: ${message}`,
      );
    }
  });

  it('names outputs keys under outputs/, one per deploy, component and action', () => {
    expect(outputsKeyFor('dep_01', 'web')).toBe('outputs/dep_01/web.json');
    expect(outputsKeyFor('dep 01/x', 'web', 'destroy')).toBe('outputs/dep-01-x/web.destroy.json');
  });
});

// ---- running the generated build ----------------------------------------------------------------

/** Records every call of the stubbed `aws` and `helm` as a JSON line, and plays their part. */
const STUB = String.raw`
const fs = require('fs');
const path = require('path');
const [tool, ...args] = process.argv.slice(2);
const env = process.env;
const stdin = args.includes('--password-stdin') ? fs.readFileSync(0, 'utf8') : undefined;
const option = (name) => args[args.indexOf(name) + 1];
const files = {};
if (tool === 'helm' && args[0] === 'upgrade') {
  args.forEach((arg, i) => { if (arg === '--values') files[args[i + 1]] = fs.readFileSync(args[i + 1], 'utf8'); });
}
const seen = {};
for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'KUBECONFIG', 'FERRY_EXTERNAL_ID']) seen[name] = env[name] ?? null;
fs.appendFileSync(env.STUB_LOG, JSON.stringify({ tool, args, env: seen, stdin, files }) + '\n');
const fail = (message) => { process.stderr.write(message + '\n'); process.exit(254); };
const joined = args.slice(0, 2).join(' ');
if (tool === 'aws') {
  if (joined === 'sts assume-role') {
    if (env.STUB_ASSUME_FAILS) fail('An error occurred (AccessDenied) when calling the AssumeRole operation');
    process.stdout.write('ASIASTUBKEY\tstub-secret-key\tstub-session-token\n');
  } else if (joined === 'ecr get-login-password') {
    process.stdout.write('stub-ecr-password\n');
  } else if (joined === 'eks update-kubeconfig') {
    fs.writeFileSync(option('--kubeconfig'), 'apiVersion: v1\n');
  } else if (joined === 's3 cp') {
    const [from, to] = args.filter((arg, i) => i > 1 && !arg.startsWith('--'));
    if (to.startsWith('s3://')) {
      const target = path.join(env.STUB_S3_DIR, to.slice(5));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(from, target);
    } else fs.writeFileSync(to, 'from: ' + from + '\n');
  } else fail('aws stub: unexpected ' + args.join(' '));
} else if (tool === 'helm') {
  if (args[0] === 'version') process.stdout.write(args.includes('--short') ? 'v${HELM_VERSION}+stub\n' : 'v${HELM_VERSION}');
  else if (args[0] === 'pull') {
    const dir = path.join(option('--untardir'), 'mychart');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'Chart.yaml'), 'name: mychart\n');
    for (const name of JSON.parse(env.STUB_CHART_FILES || '[]')) fs.writeFileSync(path.join(dir, name), 'file: ' + name + '\n');
  } else if (args[0] === 'status') {
    process.stdout.write(JSON.stringify({ name: args[args.length - 1], namespace: option('--namespace'), version: 3,
      chart: { metadata: { name: 'mychart', version: '1.2.3', appVersion: '2.0' } }, config: { secret: 'x' } }));
  } else if (!['registry', 'upgrade', 'uninstall'].includes(args[0])) fail('helm stub: unexpected ' + args.join(' '));
}
`;

interface Call {
  readonly tool: string;
  readonly args: string[];
  readonly env: Record<string, string | null>;
  readonly stdin?: string;
  readonly files: Record<string, string>;
}

interface Run {
  readonly status: string;
  readonly failure?: { phase: string; message: string };
  readonly calls: Call[];
  readonly log: string;
  /** What the runner wrote to s3://<bucket>/<key>, if anything. */
  readonly written: string | undefined;
  readonly workDir: string;
}

describe('the generated build, run as CodeBuild runs it', () => {
  const root = mkdtempSync(join(tmpdir(), 'ferry-runner-'));
  const stubs = join(root, 'stubs');
  const saved: Record<string, string | undefined> = {};
  let runs = 0;

  beforeAll(() => {
    mkdirSync(stubs);
    writeFileSync(join(stubs, 'stub.cjs'), STUB);
    for (const tool of ['aws', 'helm']) {
      writeFileSync(join(stubs, tool), `#!/usr/bin/env bash\nexec node "${stubs}/stub.cjs" ${tool} "$@"\n`);
      chmodSync(join(stubs, tool), 0o755);
    }
    // The runner's own credentials come from CodeBuild's container endpoint, not the environment.
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL']) {
      saved[name] = process.env[name];
      delete process.env[name];
    }
  });

  afterAll(() => {
    for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
    rmSync(root, { recursive: true, force: true });
  });

  async function run(build: RunnerBuild, extra: Record<string, string> = {}): Promise<Run> {
    const dir = join(root, `run-${++runs}`);
    const workDir = join(dir, 'src');
    const stubLog = join(dir, 'calls.jsonl');
    const s3Dir = join(dir, 's3');
    mkdirSync(s3Dir, { recursive: true });
    writeFileSync(stubLog, '');
    const env = Object.fromEntries(build.environment.map((variable) => [variable.Name, variable.Value]));
    const result = await runBuildspec(buildspecOf(build), {
      workDir,
      timeoutMs: 50_000,
      env: {
        ...env,
        PATH: `${stubs}:${process.env.PATH}`,
        STUB_LOG: stubLog,
        STUB_S3_DIR: s3Dir,
        AWS_REGION: 'us-east-1',
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/runner-guid',
        ...extra,
      },
    });
    const written = join(s3Dir, env.FERRY_OUTPUTS_BUCKET!, env.FERRY_OUTPUTS_KEY!);
    return {
      status: result.status,
      ...(result.failure && { failure: result.failure }),
      calls: readFileSync(stubLog, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Call),
      log: readFileSync(result.logFile, 'utf8'),
      written: existsSync(written) ? readFileSync(written, 'utf8') : undefined,
      workDir,
    };
  }

  const find = (calls: Call[], tool: string, ...prefix: string[]) =>
    calls.filter((call) => call.tool === tool && prefix.every((part, i) => call.args[i] === part));
  const assumed = { AWS_ACCESS_KEY_ID: 'ASIASTUBKEY', AWS_SESSION_TOKEN: 'stub-session-token' };

  /** Reads what the runner wrote back as the workflow's Lambda will. */
  async function outputsOf(written: string | undefined) {
    const s3 = mockClient(S3Client);
    s3.on(GetObjectCommand).resolves({
      Body: { transformToString: async () => written } as unknown as GetObjectCommandOutput['Body'],
    });
    s3.on(DeleteObjectCommand).resolves({});
    try {
      return await readRunnerOutputs(new S3Client({}), 'ferry-acme-outputs', 'outputs/dep_01/web.json');
    } finally {
      s3.restore();
    }
  }

  it('applies a source chart as the install: role assumed, registry login, helm upgrade, outputs written', async () => {
    const canary = join(root, 'canary-helm');
    const evil = evilFor(canary);
    // A file name: no slash, so the command it would run touches a file in the working directory.
    const evilFile = 'values $(touch pwned) `touch pwned`.yaml';
    const spec = {
      ...helmSource,
      values: { replicas: 2, note: evil, multi: 'line one\nline two' },
      valuesFiles: ['values-prod.yaml', evilFile, 's3://vendor-values/web.yaml'],
    };
    const result = await run(runnerBuild(request(spec), options), {
      STUB_CHART_FILES: JSON.stringify(['values-prod.yaml', evilFile]),
    });
    expect(result.failure).toBeUndefined();
    expect(result.status).toBe('SUCCEEDED');
    expect(existsSync(canary)).toBe(false);
    expect(existsSync(join(result.workDir, 'pwned'))).toBe(false);

    const { calls } = result;
    const [assume] = find(calls, 'aws', 'sts', 'assume-role');
    expect(assume!.args).toEqual([
      'sts',
      'assume-role',
      '--role-arn',
      roleArn,
      '--external-id',
      'ext-id-of-install',
      '--role-session-name',
      'ferry-dep_01',
      '--duration-seconds',
      '3600',
      '--query',
      'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]',
      '--output',
      'text',
    ]);
    // Assumed with the runner's own credentials, in the runner's region.
    expect(assume!.env).toMatchObject({ AWS_ACCESS_KEY_ID: null, AWS_REGION: 'us-east-1' });

    const [kubeconfig] = find(calls, 'aws', 'eks', 'update-kubeconfig');
    expect(kubeconfig!.args.slice(0, 6)).toEqual([
      'eks',
      'update-kubeconfig',
      '--name',
      'main',
      '--region',
      'eu-west-1',
    ]);
    expect(kubeconfig!.env).toMatchObject({ ...assumed, AWS_REGION: 'eu-west-1', FERRY_EXTERNAL_ID: null });

    const [login] = find(calls, 'helm', 'registry', 'login');
    expect(login!.args).toEqual(['registry', 'login', '--username', 'AWS', '--password-stdin', registryHost]);
    expect(login!.stdin).toBe('stub-ecr-password\n');
    expect(find(calls, 'aws', 'ecr', 'get-login-password')[0]!.env).toMatchObject(assumed);
    const [pull] = find(calls, 'helm', 'pull');
    expect(pull!.args.slice(-2)).toEqual(['--', `oci://${registryHost}/ferry/shop/web@${digest}`]);

    const [upgrade] = find(calls, 'helm', 'upgrade');
    const chartDir = join(result.workDir, '.ferry', 'chart', 'mychart');
    const valuesFile = join(result.workDir, '.ferry', 'values.json');
    const s3Values = join(result.workDir, '.ferry', 'values-2.yaml');
    expect(upgrade!.args).toEqual([
      'upgrade',
      '--install',
      '--namespace',
      'shop',
      '--create-namespace',
      '--atomic',
      '--wait',
      '--timeout',
      '15m',
      '--values',
      join(chartDir, 'values-prod.yaml'),
      '--values',
      join(chartDir, evilFile),
      '--values',
      s3Values,
      '--values',
      valuesFile,
      '--',
      'web',
      chartDir,
    ]);
    // The spec's values reach Helm byte for byte, last so that they win.
    expect(JSON.parse(upgrade!.files[valuesFile]!)).toEqual(spec.values);
    expect(upgrade!.files[s3Values]).toBe('from: s3://vendor-values/web.yaml\n');
    // The chart's code runs with the install's credentials only.
    expect(upgrade!.env).toMatchObject({ ...assumed, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: null });

    const [upload] = find(calls, 'aws', 's3', 'cp').filter((call) => call.args.at(-1)!.startsWith('s3://'));
    expect(upload!.args.at(-1)).toBe('s3://ferry-acme-outputs/outputs/dep_01/web.json');
    expect(upload!.env).toMatchObject({
      AWS_ACCESS_KEY_ID: null,
      AWS_SESSION_TOKEN: null,
      AWS_REGION: 'us-east-1',
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/runner-guid',
    });
    expect(await outputsOf(result.written)).toEqual({
      outputs: {
        releaseName: 'web',
        namespace: 'shop',
        revision: '3',
        chart: 'mychart',
        chartVersion: '1.2.3',
        appVersion: '2.0',
      },
      sensitiveOutputs: [],
    });
    expect(result.log).not.toContain('stub-secret-key');
    expect(result.log).not.toContain('stub-session-token');
    expect(result.log).not.toContain('stub-ecr-password');
    expect(readdirSync(join(result.workDir, '.ferry'))).not.toContain('helm-registry.json');
  });

  it('applies a prebuilt chart from its repository without a registry login', async () => {
    const result = await run(runnerBuild(prebuiltRequest(), options));
    expect(result.failure).toBeUndefined();
    expect(find(result.calls, 'helm', 'registry')).toHaveLength(0);
    const [pull] = find(result.calls, 'helm', 'pull');
    expect(pull!.args.slice(4)).toEqual([
      '--repo',
      'https://charts.bitnami.com/bitnami',
      '--version',
      '19.0.0',
      '--',
      'redis',
    ]);
    expect(find(result.calls, 'helm', 'upgrade')[0]!.args.slice(-3)).toEqual([
      '--',
      'cache',
      join(result.workDir, '.ferry', 'chart', 'mychart'),
    ]);
  });

  it('uninstalls the release to destroy it and writes empty outputs', async () => {
    const result = await run(runnerBuild(request(helmSource), { ...options, action: 'destroy' }));
    expect(result.failure).toBeUndefined();
    const [uninstall] = find(result.calls, 'helm', 'uninstall');
    expect(uninstall!.args).toEqual([
      'uninstall',
      '--namespace',
      'shop',
      '--wait',
      '--ignore-not-found',
      '--',
      'web',
    ]);
    expect(uninstall!.env).toMatchObject(assumed);
    expect(find(result.calls, 'helm', 'upgrade')).toHaveLength(0);
    expect(await outputsOf(result.written)).toEqual({ outputs: {}, sensitiveOutputs: [] });
  });

  it('stops before deploying, writing nothing, when the install role cannot be assumed', async () => {
    const result = await run(runnerBuild(request(helmSource), options), { STUB_ASSUME_FAILS: '1' });
    expect(result.status).toBe('FAILED');
    expect(result.failure?.phase).toBe('pre_build');
    expect(result.failure?.message).toContain(`cannot assume ${roleArn} for install inst_01abc`);
    expect(result.failure?.message).toContain('AccessDenied');
    expect(find(result.calls, 'helm', 'upgrade')).toHaveLength(0);
    expect(result.written).toBeUndefined();
  });

  it("runs a plugin's deploy commands as the install, its outputs and sensitive outputs written", async () => {
    const canary = join(root, 'canary-plugin');
    const evil = evilFor(canary);
    const spec = {
      ...custom,
      plugin: {
        ...custom.plugin,
        deploy: {
          environment: { EVIL: evil },
          commands: [
            'printf "EVIL=%s\\n" "$EVIL" >>"$FERRY_OUTPUT_ENV"',
            'aws sts get-caller-identity || true',
            'echo "URI=$FERRY_ARTIFACT_URI" >>"$FERRY_OUTPUT_ENV"; echo "TOKEN=t0k3n" >>"$FERRY_SENSITIVE_OUTPUT_ENV"',
            'echo "RUNNER=${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-none}" >>"$FERRY_OUTPUT_ENV"',
          ],
        },
      },
    };
    const build = runnerBuild(request(spec), options);
    const result = await run(build);
    expect(result.failure).toBeUndefined();
    expect(existsSync(canary)).toBe(false);
    expect(await outputsOf(result.written)).toEqual({
      outputs: {
        EVIL: evil,
        URI: `${registryHost}/ferry/shop/web@${digest}`,
        TOKEN: 't0k3n',
        RUNNER: 'none',
      },
      sensitiveOutputs: ['TOKEN'],
    });
  });

  it("fails a plugin's deploy at its failing command, naming it", async () => {
    const spec = {
      ...custom,
      plugin: { ...custom.plugin, deploy: { commands: ['true', 'exit 3', 'touch never'], environment: {} } },
    };
    const result = await run(runnerBuild(request(spec), options));
    expect(result.status).toBe('FAILED');
    expect(result.failure?.message).toContain("the plugin's deploy command 2 of 3 failed");
    expect(existsSync(join(result.workDir, 'never'))).toBe(false);
    expect(result.written).toBeUndefined();
  });

  it('destroys nothing for a custom plugin and writes empty outputs, without assuming the role', async () => {
    const result = await run(runnerBuild(request(custom), { ...options, action: 'destroy' }));
    expect(result.failure).toBeUndefined();
    expect(result.log).toContain('has no destroy step: nothing to destroy');
    expect(find(result.calls, 'aws', 'sts')).toHaveLength(0);
    expect(await outputsOf(result.written)).toEqual({ outputs: {}, sensitiveOutputs: [] });
  });

  describe('terraform, for real, against a stub registry and a stub S3', () => {
    const registryAuth = `Basic ${Buffer.from('AWS:stub-ecr-password').toString('base64')}`;
    const blobs = new Map<string, Buffer>();
    const manifests = new Map<string, Buffer>();
    const s3Objects = new Map<string, Buffer>();
    const s3Requests: { method: string; path: string; ifNoneMatch?: string }[] = [];
    let registry: Server;
    let s3: Server;
    let moduleUri: string;
    let s3Endpoint: string;

    const listen = async (server: Server) => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const body = (req: IncomingMessage) =>
      new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => resolve(Buffer.concat(chunks)));
      });
    const push = (layers: { mediaType: string; bytes: Buffer }[]) => {
      const config = {
        mediaType: 'application/vnd.ferry.terraform.config.v1+json',
        bytes: Buffer.from('{}'),
      };
      for (const blob of [config, ...layers]) blobs.set(sha(blob.bytes), blob.bytes);
      const manifest = artifactManifest({ config, layers });
      manifests.set(sha(manifest), manifest);
      return sha(manifest);
    };
    const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

    beforeAll(async () => {
      registry = createServer((req, res) => {
        if (req.headers.authorization !== registryAuth) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="stub"' }).end();
          return;
        }
        const match = /^\/v2\/(.+)\/(manifests|blobs)\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
        const found = match && (match[2] === 'manifests' ? manifests : blobs).get(match[3]!);
        if (!found) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, {
          'content-type': match[2] === 'manifests' ? OCI_IMAGE_MANIFEST : 'application/octet-stream',
          'content-length': found.length,
          'docker-content-digest': match[3]!,
        });
        res.end(found);
      });
      s3 = createServer(async (req, res) => {
        const data = await body(req);
        const url = new URL(req.url ?? '/', 'http://s3');
        const key = decodeURIComponent(url.pathname);
        const ifNoneMatch = req.headers['if-none-match'] as string | undefined;
        s3Requests.push({ method: req.method ?? '', path: key, ...(ifNoneMatch && { ifNoneMatch }) });
        const xml = { 'content-type': 'application/xml' };
        if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
          res
            .writeHead(200, xml)
            .end(
              '<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>',
            );
        } else if (req.method === 'PUT') {
          if (ifNoneMatch === '*' && s3Objects.has(key)) {
            res.writeHead(412, xml).end('<Error><Code>PreconditionFailed</Code></Error>');
            return;
          }
          s3Objects.set(key, data);
          res.writeHead(200, { etag: '"stub"' }).end();
        } else if (req.method === 'GET' || req.method === 'HEAD') {
          const object = s3Objects.get(key);
          if (!object)
            res
              .writeHead(404, xml)
              .end(req.method === 'GET' ? '<Error><Code>NoSuchKey</Code></Error>' : undefined);
          else
            res
              .writeHead(200, { 'content-length': object.length })
              .end(req.method === 'GET' ? object : undefined);
        } else if (req.method === 'DELETE') {
          s3Objects.delete(key);
          res.writeHead(204).end();
        } else res.writeHead(400).end();
      });
      const host = await listen(registry);
      s3Endpoint = `http://${await listen(s3)}`;

      const moduleDir = join(root, 'module-src');
      mkdirSync(moduleDir);
      writeFileSync(
        join(moduleDir, 'main.tf'),
        [
          'variable "message" { type = string }',
          'variable "size" { type = number }',
          'resource "terraform_data" "db" { input = var.message }',
          'output "echo" { value = terraform_data.db.output }',
          'output "size" { value = var.size * 2 }',
          'output "password" {',
          '  value     = "s3cr3t-${var.size}"',
          '  sensitive = true',
          '}',
          '',
        ].join('\n'),
      );
      const module = await packageTerraformModule(moduleDir);
      moduleUri = `${host}/ferry/shop/db@${push([{ mediaType: TERRAFORM_MODULE_LAYER, bytes: module.layerBytes }])}`;
    });

    afterAll(() => {
      registry.close();
      s3.close();
    });

    const terraformEnv = () => ({
      FERRY_PACKAGE: `"${TSX}" "${join(ROOT, 'tools', 'ferry-package.ts')}"`,
      FERRY_REGISTRY_INSECURE: '1',
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      // What the stand-in S3 needs and real S3 does not; the runner's own backend settings stand.
      TF_CLI_ARGS_init: [
        'use_path_style=true',
        'skip_credentials_validation=true',
        'skip_requesting_account_id=true',
        'skip_metadata_api_check=true',
        'skip_s3_checksum=true',
      ]
        .map((setting) => `-backend-config=${setting}`)
        .join(' '),
      TF_CLI_CONFIG_FILE: '/dev/null',
    });

    it('pulls the module, keeps state and its lock file in the install bucket, and reads its outputs', async () => {
      const canary = join(root, 'canary-terraform');
      const evil = `${evilFor(canary)}\nsecond line`;
      const spec = { ...terraform, variables: { message: evil, size: 21 }, environment: {} };
      const build = runnerBuild(request(spec, { uri: moduleUri }, 'db'), options);
      const result = await run(build, terraformEnv());
      expect(result.failure).toBeUndefined();
      expect(result.status).toBe('SUCCEEDED');
      expect(existsSync(canary)).toBe(false);
      expect(await outputsOf(result.written)).toEqual({
        outputs: { echo: evil, size: '42', password: 's3cr3t-21' },
        sensitiveOutputs: ['password'],
      });

      const backend = JSON.parse(
        readFileSync(join(result.workDir, '.ferry', 'module', BACKEND_OVERRIDE_FILE), 'utf8'),
      );
      expect(backend).toEqual({
        terraform: {
          backend: {
            s3: {
              bucket: 'ferry-acme-inst-state-1a2b3c',
              key: 'ferry/components/db/terraform.tfstate',
              region: 'eu-west-1',
              use_lockfile: true,
              encrypt: true,
            },
          },
        },
      });
      const stateKey = '/ferry-acme-inst-state-1a2b3c/ferry/components/db/terraform.tfstate';
      const state = JSON.parse(s3Objects.get(stateKey)!.toString('utf8'));
      expect(state.resources).toHaveLength(1);
      expect(s3Requests).toContainEqual({ method: 'PUT', path: `${stateKey}.tflock`, ifNoneMatch: '*' });
      expect(s3Requests).toContainEqual({ method: 'DELETE', path: `${stateKey}.tflock` });
      expect(s3Objects.has(`${stateKey}.tflock`)).toBe(false);
      expect(find(result.calls, 'aws', 'ecr', 'get-login-password')[0]!.env).toMatchObject(assumed);
      expect(result.log).not.toContain('s3cr3t-21');
      expect(result.log).not.toContain('stub-ecr-password');
    });

    it('destroys what it applied, from the same state', async () => {
      const spec = { ...terraform, variables: { message: 'bye', size: 1 }, environment: {} };
      const build = runnerBuild(request(spec, { uri: moduleUri }, 'db'), { ...options, action: 'destroy' });
      const result = await run(build, terraformEnv());
      expect(result.failure).toBeUndefined();
      expect(result.log).toContain('1 destroyed');
      const state = JSON.parse(
        s3Objects
          .get('/ferry-acme-inst-state-1a2b3c/ferry/components/db/terraform.tfstate')!
          .toString('utf8'),
      );
      expect(state.resources).toEqual([]);
      expect(await outputsOf(result.written)).toEqual({ outputs: {}, sensitiveOutputs: [] });
    });

    it('refuses an artifact that is not a Terraform module, and a module entry that escapes', async () => {
      const chartUri = `${moduleUri.split('/')[0]}/ferry/shop/web@${push([
        { mediaType: HELM_CHART_LAYER, bytes: deterministicGzip(Buffer.from('x')) },
      ])}`;
      const escaping = await (async () => {
        const pack = tar.pack();
        const chunks: Buffer[] = [];
        pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
        const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
        pack.entry({ name: '../../escaped.tf' }, 'output "x" { value = 1 }\n');
        pack.finalize();
        await ended;
        return deterministicGzip(Buffer.concat(chunks));
      })();
      const escapingUri = `${moduleUri.split('/')[0]}/ferry/shop/db@${push([
        { mediaType: TERRAFORM_MODULE_LAYER, bytes: escaping },
      ])}`;
      const notModule = await run(
        runnerBuild(request(terraform, { uri: chartUri }, 'db'), options),
        terraformEnv(),
      );
      expect(notModule.failure?.message).toContain('is not a Terraform module artifact');
      const escaped = await run(
        runnerBuild(request(terraform, { uri: escapingUri }, 'db'), options),
        terraformEnv(),
      );
      expect(escaped.failure?.message).toContain('module entry "../../escaped.tf" lands outside the module');
      expect(existsSync(join(escaped.workDir, 'escaped.tf'))).toBe(false);
      expect(existsSync(join(escaped.workDir, '.ferry', 'escaped.tf'))).toBe(false);
    });
  });
});

// ---- reading outputs back -----------------------------------------------------------------------

describe('readRunnerOutputs', () => {
  const s3 = mockClient(S3Client);
  const client = new S3Client({});
  const where = 's3://ferry-acme-outputs/outputs/dep_01/db.json';
  const body = (text: string) =>
    ({ transformToString: async () => text }) as unknown as GetObjectCommandOutput['Body'];

  beforeEach(() => s3.reset());
  afterAll(() => s3.restore());

  it('answers the outputs and the sensitive names, then deletes the object', async () => {
    s3.on(GetObjectCommand).resolves({
      Body: body('{"outputs":{"endpoint":"db.internal","password":"p"},"sensitive":["password"]}'),
    });
    s3.on(DeleteObjectCommand).resolves({});
    await expect(readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json')).resolves.toEqual({
      outputs: { endpoint: 'db.internal', password: 'p' },
      sensitiveOutputs: ['password'],
    });
    expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'ferry-acme-outputs',
      Key: 'outputs/dep_01/db.json',
    });
    expect(s3.commandCalls(DeleteObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'ferry-acme-outputs',
      Key: 'outputs/dep_01/db.json',
    });
  });

  it('says the outputs are missing, naming the object', async () => {
    s3.on(GetObjectCommand).rejects(
      new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }),
    );
    const reading = readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json');
    await expect(reading).rejects.toThrow(RunnerOutputsError);
    await expect(readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json')).rejects.toThrow(
      `the deploy runner's outputs ${where} do not exist`,
    );
    expect(s3.commandCalls(DeleteObjectCommand)).toHaveLength(0);
  });

  it('passes on another read failure with the object and the cause', async () => {
    const denied = Object.assign(new Error('Access Denied'), { name: 'AccessDenied' });
    s3.on(GetObjectCommand).rejects(denied);
    await expect(readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json')).rejects.toThrow(
      `cannot read the deploy runner's outputs ${where}: AccessDenied: Access Denied`,
    );
  });

  it('refuses malformed outputs, naming the object and the field, and keeps the object', async () => {
    const cases: [string, string][] = [
      ['not json', 'are not JSON'],
      ['{"outputs":{"a":1},"sensitive":[]}', 'outputs.a: '],
      ['{"outputs":{"a":"1"},"sensitive":["b"]}', "sensitive[0]: names 'b', which is not an output"],
      ['{"outputs":{}}', 'sensitive: '],
      ['{"outputs":{},"sensitive":[],"extra":1}', 'extra'],
      ['[]', '(the object)'],
    ];
    for (const [text, message] of cases) {
      s3.on(GetObjectCommand).resolves({ Body: body(text) });
      const reading = readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json');
      await expect(reading).rejects.toThrow(RunnerOutputsError);
      await expect(readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json')).rejects.toThrow(
        message,
      );
      await expect(readRunnerOutputs(client, 'ferry-acme-outputs', 'outputs/dep_01/db.json')).rejects.toThrow(
        where,
      );
    }
    expect(s3.commandCalls(DeleteObjectCommand)).toHaveLength(0);
  });
});
