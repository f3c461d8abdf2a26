/**
 * The deploy runner: how `helm`, `terraform` and `custom` components are applied (and destroyed) in
 * AWS. The deploy-install workflow starts the tenant's runner project (lib/deploy-runner.ts) with
 * `codebuild:startBuild.sync`, passing what `runnerBuild` returns as `BuildspecOverride`,
 * `EnvironmentVariablesOverride` and (for a plugin) `ImageOverride`; the build assumes the install's
 * role itself, applies the component in the install's account and writes its outputs to the runner's
 * outputs bucket, where `readRunnerOutputs` picks them up.
 *
 * What no spec can do:
 * - inject shell: the buildspec text depends only on the component type, the action and the chart's
 *   kind. Every value from the spec or the install (values, variables, names, plugin commands) is an
 *   environment variable that commands reference quoted; positional arguments come after `--`.
 * - see the tenant's credentials: the install's role is assumed in the build and its credentials are
 *   exported to that build's shell only (never echoed, never exported variables, no `set -x`). Helm,
 *   Terraform and plugin commands run without the runner's own container credentials, so code in a
 *   chart, module or plugin reaches the install's account and nothing of the tenant's.
 *
 * Each command stands on its own (`set -euo pipefail` first): CodeBuild runs each as its own script,
 * carrying the environment and the working directory over, not shell options.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell text, where ${VAR} is meant
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { z } from 'zod';
import { command, FETCH_PACKAGING_TOOL } from '../build/buildspec';
import type { EnvironmentVariable } from '../build/steps';
import { type ComponentSpec, formatPath } from '../domain/schemas';
import { InvalidReferenceError, parseReference } from '../oci/reference';
import { installRoleName, sessionNameFor } from '../shared/install-role';
import type { ApplyRequest, ApplyResult } from './platform';

/** The Helm the runner installs (≥ 3.18: charts by OCI digest), checked against Helm's published sums. */
export const HELM_VERSION = '3.18.4';
/** sha256 of `helm-v<HELM_VERSION>-linux-<arch>.tar.gz`, from the v3.18.4 release notes (get.helm.sh). */
const HELM_SHA256 = {
  amd64: 'f8180838c23d7c7d797b208861fecb591d9ce1690d8704ed1e4cb8e2add966c1',
  arm64: 'c0a45e67eef0c7416a8a8c9e9d5d2d30d70e4f4d3f7bea5de28241fffa8f3b89',
} as const;
/** How long `helm upgrade --atomic --wait` waits for the release to become ready before rolling back. */
export const HELM_TIMEOUT = '15m';
/** S3 native state locking (`use_lockfile`), which the access template's state bucket is made for. */
export const MIN_TERRAFORM_VERSION = '1.10.0';
/** The install role's sessions last this long: the most role chaining allows (CodeBuild's role is assumed). */
export const SESSION_SECONDS = 3600;
/** Where outputs must be written: the runner's role may write nothing else in its bucket. */
export const OUTPUTS_PREFIX = 'outputs/';
/** The name of the file Ferry adds to a Terraform module to put its state in the install's bucket. */
export const BACKEND_OVERRIDE_FILE = 'zz_ferry_backend_override.tf.json';

export type RunnerAction = 'apply' | 'destroy';

export interface RunnerOptions {
  /** The tenant whose runner this is: the install's role is `ferry.<tenant>.<installId>`. */
  readonly tenant: string;
  /** The runner's outputs bucket (DeployRunner.outputsBucket). */
  readonly outputsBucket: string;
  /** Where in it this run writes its outputs; under `outputs/` (see outputsKeyFor). */
  readonly outputsKey: string;
  /** The install's sts:ExternalId. */
  readonly externalId: string;
  /** The install's role: `arn:<partition>:iam::<install account>:role/ferry.<tenant>.<installId>`. */
  readonly roleArn: string;
  /** @default 'apply' */
  readonly action?: RunnerAction;
  /**
   * Terraform only: the install's state bucket, the access stack's `StateBucketName` output (it is a
   * generated name in the customer's account, so the install record alone cannot say it).
   */
  readonly stateBucket?: string;
}

/** What the workflow passes to StartBuild (its keys are those Step Functions' CodeBuild integration takes). */
export interface RunnerBuild {
  /** BuildspecOverride: YAML, buildspec version 0.2. */
  readonly buildspec: string;
  /** EnvironmentVariablesOverride. */
  readonly environment: EnvironmentVariable[];
  /** ImageOverride: the plugin's image for a custom deploy; undefined means the project's image. */
  readonly image?: string;
}

/** The deploy cannot be run as asked: names the deploy, the install and the field at fault. */
export class RunnerInputError extends Error {
  override readonly name = 'RunnerInputError';
}

/** The runner's outputs object is missing, unreadable or not what the runner writes. */
export class RunnerOutputsError extends Error {
  override readonly name = 'RunnerOutputsError';
}

interface Phase {
  commands: string[];
}

interface RunnerBuildspec {
  version: '0.2';
  env: { shell: 'bash' };
  phases: { install: Phase; pre_build?: Phase; build: Phase };
}

type HelmSpec = Extract<ComponentSpec, { type: 'helm' }>;
type TerraformSpec = Extract<ComponentSpec, { type: 'terraform' }>;
type CustomSpec = Extract<ComponentSpec, { type: 'custom' }>;

/**
 * Runs a program without the runner's own credentials (CodeBuild's container credentials), so that
 * only the install's, exported in the shell, remain. Everything that runs a chart's, a module's or a
 * plugin's code goes through it.
 */
const AS_INSTALL =
  'env -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI -u AWS_CONTAINER_CREDENTIALS_FULL_URI' +
  ' -u AWS_CONTAINER_AUTHORIZATION_TOKEN -u AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE';

const SETUP = command(
  'export FERRY_WORK_DIR="$PWD"',
  'export FERRY_STATE_DIR="$FERRY_WORK_DIR/.ferry"',
  'mkdir -p "$FERRY_STATE_DIR/bin"',
  'export PATH="$FERRY_STATE_DIR/bin:$PATH"',
  // The region of the runner's own bucket, before the install's region takes over.
  'export FERRY_RUNNER_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"',
  'export FERRY_RESULT_FILE="$FERRY_STATE_DIR/result.json"',
  'rm -f "$FERRY_RESULT_FILE"',
);

const ARCH = [
  'case "$(uname -m)" in',
  '  x86_64 | amd64) arch=amd64 ;;',
  '  aarch64 | arm64) arch=arm64 ;;',
  '  *) echo "the deploy runner runs on x86_64 or arm64, not $(uname -m)" >&2; exit 1 ;;',
  'esac',
];

/** Helm at HELM_VERSION, unless that version is on PATH already; the download is checked against its sum. */
const INSTALL_HELM = command(
  `if [ "$(helm version --template '{{.Version}}' 2>/dev/null || true)" != "v${HELM_VERSION}" ]; then`,
  ...ARCH.map((line) => `  ${line}`),
  '  case "$arch" in',
  `    amd64) sum=${HELM_SHA256.amd64} ;;`,
  `    arm64) sum=${HELM_SHA256.arm64} ;;`,
  '  esac',
  `  curl -fsSL --retry 3 -o "$FERRY_STATE_DIR/helm.tar.gz" "https://get.helm.sh/helm-v${HELM_VERSION}-linux-$arch.tar.gz"`,
  '  if ! echo "$sum  $FERRY_STATE_DIR/helm.tar.gz" | sha256sum -c --quiet -; then',
  `    echo "helm v${HELM_VERSION} for linux-$arch does not match its published checksum" >&2`,
  '    exit 1',
  '  fi',
  '  tar -xzf "$FERRY_STATE_DIR/helm.tar.gz" -C "$FERRY_STATE_DIR/bin" --strip-components=1 "linux-$arch/helm"',
  '  rm -f "$FERRY_STATE_DIR/helm.tar.gz"',
  'fi',
  'helm version --short',
);

/**
 * Terraform at the spec's version, unless it is on PATH already. HashiCorp publishes a SHA256SUMS
 * file per release: the zip must match its line there (both fetched over TLS from
 * releases.hashicorp.com; the file's GPG signature is not checked).
 */
const INSTALL_TERRAFORM = command(
  'if [ "$(terraform version 2>/dev/null | head -n 1 || true)" != "Terraform v$FERRY_TERRAFORM_VERSION" ]; then',
  ...ARCH.map((line) => `  ${line}`),
  '  base="https://releases.hashicorp.com/terraform/$FERRY_TERRAFORM_VERSION"',
  '  zip="terraform_${FERRY_TERRAFORM_VERSION}_linux_$arch.zip"',
  '  curl -fsSL --retry 3 -o "$FERRY_STATE_DIR/$zip" "$base/$zip"',
  '  curl -fsSL --retry 3 -o "$FERRY_STATE_DIR/terraform.SHA256SUMS" \\',
  '    "$base/terraform_${FERRY_TERRAFORM_VERSION}_SHA256SUMS"',
  '  if ! (cd "$FERRY_STATE_DIR" && grep -F "  $zip" terraform.SHA256SUMS | sha256sum -c --quiet -); then',
  '    echo "terraform $FERRY_TERRAFORM_VERSION for linux_$arch does not match its published SHA256SUMS" >&2',
  '    exit 1',
  '  fi',
  '  if command -v unzip >/dev/null 2>&1; then',
  '    unzip -o -q "$FERRY_STATE_DIR/$zip" terraform -d "$FERRY_STATE_DIR/bin"',
  '  else',
  `    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("terraform", sys.argv[2])' \\`,
  '      "$FERRY_STATE_DIR/$zip" "$FERRY_STATE_DIR/bin"',
  '  fi',
  '  chmod +x "$FERRY_STATE_DIR/bin/terraform"',
  '  rm -f "$FERRY_STATE_DIR/$zip" "$FERRY_STATE_DIR/terraform.SHA256SUMS"',
  'fi',
  'terraform version',
  'export TF_IN_AUTOMATION=1 TF_INPUT=0',
);

/** A plugin's deploy runs in its image, with Ferry's own steps: they need these. */
const CHECK_PLUGIN_IMAGE = command(
  'for tool in aws node; do',
  '  if ! command -v "$tool" >/dev/null 2>&1; then',
  `    echo "the plugin image $FERRY_PLUGIN_IMAGE has no $tool: a deploy runs in the plugin's image, which` +
    ` needs bash, the AWS CLI and Node.js 20 or later" >&2`,
  '    exit 1',
  '  fi',
  'done',
);

/**
 * Assumes the install's role with its ExternalId, as a session named after the deploy. The
 * credentials go from the AWS CLI's output straight into exported variables, never printed.
 */
const ASSUME_INSTALL_ROLE = command(
  'if ! credentials="$(aws sts assume-role --role-arn "$FERRY_INSTALL_ROLE_ARN" \\',
  '    --external-id "$FERRY_EXTERNAL_ID" --role-session-name "$FERRY_SESSION_NAME" \\',
  `    --duration-seconds ${SESSION_SECONDS} \\`,
  "    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)\"; then",
  '  echo "cannot assume $FERRY_INSTALL_ROLE_ARN for install $FERRY_INSTALL_ID' +
    ' (account $FERRY_INSTALL_ACCOUNT, $FERRY_INSTALL_REGION): is its access stack in place,' +
    ' trusting the deploy runner with this ExternalId?" >&2',
  '  exit 1',
  'fi',
  'read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<<"$credentials"',
  'unset credentials FERRY_EXTERNAL_ID',
  'if [ -z "${AWS_SESSION_TOKEN:-}" ]; then',
  '  echo "STS returned no credentials for $FERRY_INSTALL_ROLE_ARN" >&2',
  '  exit 1',
  'fi',
  'export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN',
  'export AWS_REGION="$FERRY_INSTALL_REGION" AWS_DEFAULT_REGION="$FERRY_INSTALL_REGION"',
);

/** Writes the runner's result with the runner's own credentials, in its own region. */
const WRITE_RESULT = command(
  'if [ ! -f "$FERRY_RESULT_FILE" ]; then',
  '  echo "the deploy wrote no result file" >&2',
  '  exit 1',
  'fi',
  'runner=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN)',
  'if [ -n "${FERRY_RUNNER_REGION:-}" ]; then',
  '  runner+=(AWS_REGION="$FERRY_RUNNER_REGION" AWS_DEFAULT_REGION="$FERRY_RUNNER_REGION")',
  'fi',
  '"${runner[@]}" aws s3 cp --quiet "$FERRY_RESULT_FILE" "s3://$FERRY_OUTPUTS_BUCKET/$FERRY_OUTPUTS_KEY"',
  'rm -f "$FERRY_RESULT_FILE"',
  'echo "outputs written to s3://$FERRY_OUTPUTS_BUCKET/$FERRY_OUTPUTS_KEY"',
);

const NO_OUTPUTS = command(`printf '%s' '{"outputs":{},"sensitive":[]}' >"$FERRY_RESULT_FILE"`);

// ---- node scripts (constant text, single-quoted in shell: no single quote inside) ---------------

/** `node -e SCRIPT <terraform output -json file> <result file>`. */
const TERRAFORM_RESULT_JS = [
  'const fs = require("fs");',
  'const raw = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));',
  'const outputs = {}; const sensitive = [];',
  'for (const [name, output] of Object.entries(raw)) {',
  '  outputs[name] = typeof output.value === "string" ? output.value : JSON.stringify(output.value);',
  '  if (output.sensitive) sensitive.push(name);',
  '}',
  'fs.writeFileSync(process.argv[2], JSON.stringify({ outputs, sensitive }));',
].join(' ');

/** `node -e SCRIPT <helm status -o json file> <result file>`. */
const HELM_RESULT_JS = [
  'const fs = require("fs");',
  'const status = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));',
  'const chart = (status.chart && status.chart.metadata) || {};',
  'const outputs = { releaseName: String(status.name), namespace: String(status.namespace),',
  '  revision: String(status.version), chart: String(chart.name), chartVersion: String(chart.version) };',
  'if (chart.appVersion !== undefined) outputs.appVersion = String(chart.appVersion);',
  'fs.writeFileSync(process.argv[2], JSON.stringify({ outputs, sensitive: [] }));',
].join(' ');

/**
 * `node -e SCRIPT <outputs env file> <sensitive outputs env file> <result file>`: `KEY=value` lines,
 * as local mode reads them; a file the plugin did not write means no outputs of that kind.
 */
const PLUGIN_RESULT_JS = [
  'const fs = require("fs");',
  'const read = (file) => fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\\n") : [];',
  'const outputs = {}; const sensitive = [];',
  'const take = (file, secret) => { for (const line of read(file)) {',
  '  const match = /^([A-Za-z_][\\w-]*)=(.*)$/.exec(line); if (!match) continue;',
  '  outputs[match[1]] = match[2];',
  '  if (secret && !sensitive.includes(match[1])) sensitive.push(match[1]); } };',
  'take(process.argv[1], false); take(process.argv[2], true);',
  'fs.writeFileSync(process.argv[3], JSON.stringify({ outputs, sensitive }));',
].join(' ');

/** Writes the Terraform backend override from the environment: no value passes through shell text. */
const BACKEND_JS = [
  'const fs = require("fs"); const env = process.env;',
  'const s3 = { bucket: env.FERRY_TF_STATE_BUCKET, key: env.FERRY_TF_STATE_KEY,',
  '  region: env.FERRY_TF_STATE_REGION, use_lockfile: true, encrypt: true };',
  'fs.writeFileSync(process.argv[1], JSON.stringify({ terraform: { backend: { s3 } } }, null, 2) + "\\n");',
].join(' ');

for (const script of [TERRAFORM_RESULT_JS, HELM_RESULT_JS, PLUGIN_RESULT_JS, BACKEND_JS]) {
  if (script.includes("'")) throw new Error('a runner node script must not hold a single quote');
}

// ---- helm ------------------------------------------------------------------------------------

const KUBECONFIG = command(
  'export KUBECONFIG="$FERRY_STATE_DIR/kubeconfig"',
  'aws eks update-kubeconfig --name "$FERRY_EKS_CLUSTER" --region "$FERRY_INSTALL_REGION" \\',
  '  --kubeconfig "$KUBECONFIG"',
);

const CHART_ROOT = '"$FERRY_STATE_DIR/chart"';

/** A source chart: the synced Helm OCI artifact in the install's registry, pulled by digest. */
const PULL_SYNCED_CHART = command(
  `rm -rf ${CHART_ROOT} && mkdir -p ${CHART_ROOT}`,
  'export HELM_REGISTRY_CONFIG="$FERRY_STATE_DIR/helm-registry.json"',
  'aws ecr get-login-password --region "$FERRY_INSTALL_REGION" \\',
  '  | helm registry login --username AWS --password-stdin "$FERRY_REGISTRY_HOST"',
  `helm pull --untar --untardir ${CHART_ROOT} -- "oci://$FERRY_CHART_REF"`,
  'helm registry logout "$FERRY_REGISTRY_HOST" >/dev/null 2>&1 || true',
  'rm -f "$HELM_REGISTRY_CONFIG"',
);

/** A prebuilt chart from an HTTP(S) chart repository. */
const PULL_REPO_CHART = command(
  `rm -rf ${CHART_ROOT} && mkdir -p ${CHART_ROOT}`,
  `helm pull --untar --untardir ${CHART_ROOT} --repo "$FERRY_CHART_REPO" --version "$FERRY_CHART_VERSION" \\`,
  '  -- "$FERRY_CHART_NAME"',
);

/** A prebuilt chart from an OCI registry (`oci://host/path` + `/name`). */
const PULL_OCI_CHART = command(
  `rm -rf ${CHART_ROOT} && mkdir -p ${CHART_ROOT}`,
  `helm pull --untar --untardir ${CHART_ROOT} --version "$FERRY_CHART_VERSION" \\`,
  '  -- "$FERRY_CHART_REPO/$FERRY_CHART_NAME"',
);

const FIND_CHART_DIR = command(
  'shopt -s nullglob',
  `dirs=(${CHART_ROOT}/*/)`,
  'if [ "${#dirs[@]}" -ne 1 ]; then',
  '  echo "the chart unpacked into ${#dirs[@]} directories, not one" >&2',
  '  exit 1',
  'fi',
  'export FERRY_CHART_DIR="${dirs[0]%/}"',
);

/**
 * Values files in the spec's order, then the spec's values (which win): a relative path is a file in
 * the chart, `https://` is fetched by Helm, `s3://` is copied with the install's credentials.
 */
const HELM_UPGRADE = command(
  'set --',
  'for ((i = 0; i < ${FERRY_HELM_VALUES_FILE_COUNT:-0}; i++)); do',
  '  name="FERRY_HELM_VALUES_FILE_$i"',
  '  file="${!name}"',
  '  case "$file" in',
  '    https://*) set -- "$@" --values "$file" ;;',
  '    s3://*)',
  '      aws s3 cp --quiet "$file" "$FERRY_STATE_DIR/values-$i.yaml"',
  '      set -- "$@" --values "$FERRY_STATE_DIR/values-$i.yaml" ;;',
  '    *)',
  '      if [ ! -f "$FERRY_CHART_DIR/$file" ]; then',
  `        echo "values file '$file' (spec.valuesFiles[$i]) is not in the chart" >&2`,
  '        exit 1',
  '      fi',
  '      set -- "$@" --values "$FERRY_CHART_DIR/$file" ;;',
  '  esac',
  'done',
  `printf '%s' "$FERRY_HELM_VALUES" >"$FERRY_STATE_DIR/values.json"`,
  'set -- "$@" --values "$FERRY_STATE_DIR/values.json"',
  `${AS_INSTALL} helm upgrade --install --namespace "$FERRY_HELM_NAMESPACE" --create-namespace \\`,
  `  --atomic --wait --timeout ${HELM_TIMEOUT} "$@" -- "$FERRY_HELM_RELEASE" "$FERRY_CHART_DIR"`,
);

/** The release as `helm status` reports it (which holds the values given: the file is removed). */
const HELM_RESULT = command(
  `${AS_INSTALL} helm status --namespace "$FERRY_HELM_NAMESPACE" --output json -- "$FERRY_HELM_RELEASE" \\`,
  '  >"$FERRY_STATE_DIR/helm-status.json"',
  `node -e '${HELM_RESULT_JS}' "$FERRY_STATE_DIR/helm-status.json" "$FERRY_RESULT_FILE"`,
  'rm -f "$FERRY_STATE_DIR/helm-status.json" "$FERRY_STATE_DIR/values.json"',
);

const HELM_UNINSTALL = command(
  `${AS_INSTALL} helm uninstall --namespace "$FERRY_HELM_NAMESPACE" --wait --ignore-not-found \\`,
  '  -- "$FERRY_HELM_RELEASE"',
);

// ---- terraform -------------------------------------------------------------------------------

const TERRAFORM = `${AS_INSTALL} terraform -chdir="$FERRY_MODULE_DIR"`;

/** The synced module artifact, read with the install's registry password (kept to a subshell). */
const PULL_MODULE = command(
  'export FERRY_MODULE_DIR="$FERRY_STATE_DIR/module"',
  'rm -rf "$FERRY_MODULE_DIR"',
  '(',
  '  FERRY_REGISTRY_PASSWORD="$(aws ecr get-login-password --region "$FERRY_INSTALL_REGION")"',
  '  export FERRY_REGISTRY_USERNAME=AWS FERRY_REGISTRY_PASSWORD',
  `  eval "$FERRY_PACKAGE"' -- pull-terraform-module "$FERRY_ARTIFACT_URI" --to "$FERRY_MODULE_DIR"'`,
  ')',
);

const TERRAFORM_BACKEND = command(
  `node -e '${BACKEND_JS}' "$FERRY_MODULE_DIR/${BACKEND_OVERRIDE_FILE}"`,
  `printf '%s' "$FERRY_TF_VARIABLES" >"$FERRY_STATE_DIR/ferry.tfvars.json"`,
  'echo "state: s3://$FERRY_TF_STATE_BUCKET/$FERRY_TF_STATE_KEY (lock file on, $FERRY_TF_STATE_REGION)"',
);

const TERRAFORM_INIT = command(`${TERRAFORM} init -input=false -no-color`);

function terraformPlan(destroy: boolean): string {
  return command(
    `${TERRAFORM} plan${destroy ? ' -destroy' : ''} -input=false -no-color \\`,
    '  -var-file="$FERRY_STATE_DIR/ferry.tfvars.json" -out="$FERRY_STATE_DIR/ferry.tfplan"',
  );
}

const TERRAFORM_APPLY = command(`${TERRAFORM} apply -input=false -no-color "$FERRY_STATE_DIR/ferry.tfplan"`);

const TERRAFORM_RESULT = command(
  `${TERRAFORM} output -json >"$FERRY_STATE_DIR/terraform-outputs.json"`,
  `node -e '${TERRAFORM_RESULT_JS}' "$FERRY_STATE_DIR/terraform-outputs.json" "$FERRY_RESULT_FILE"`,
  'rm -f "$FERRY_STATE_DIR/terraform-outputs.json" "$FERRY_STATE_DIR/ferry.tfplan"',
);

// ---- custom ----------------------------------------------------------------------------------

/**
 * The plugin's deploy commands, each a `bash -euo pipefail -c` of its own in the work directory (as
 * local mode runs them), with the install's credentials and the plugin's environment. A command may
 * write `KEY=value` lines to `$FERRY_OUTPUT_ENV` (outputs) and `$FERRY_SENSITIVE_OUTPUT_ENV`
 * (outputs never stored).
 */
const PLUGIN_DEPLOY = command(
  'export FERRY_OUTPUT_ENV="$FERRY_STATE_DIR/plugin-output.env"',
  'export FERRY_SENSITIVE_OUTPUT_ENV="$FERRY_STATE_DIR/plugin-sensitive-output.env"',
  'rm -f "$FERRY_OUTPUT_ENV" "$FERRY_SENSITIVE_OUTPUT_ENV"',
  'count="${FERRY_PLUGIN_COMMAND_COUNT:-0}"',
  'for ((i = 0; i < count; i++)); do',
  '  name="FERRY_PLUGIN_COMMAND_$i"',
  '  echo "plugin deploy command $((i + 1)) of $count"',
  `  if ! (cd "$FERRY_WORK_DIR" && ${AS_INSTALL} bash -euo pipefail -c "\${!name}"); then`,
  `    echo "the plugin's deploy command $((i + 1)) of $count failed" >&2`,
  '    exit 1',
  '  fi',
  'done',
  `node -e '${PLUGIN_RESULT_JS}' "$FERRY_OUTPUT_ENV" "$FERRY_SENSITIVE_OUTPUT_ENV" "$FERRY_RESULT_FILE"`,
);

const PLUGIN_HAS_NO_DESTROY = command(
  'echo "component $FERRY_COMPONENT is a custom plugin, whose spec has no destroy step: nothing to destroy"',
);

// ---- environment -----------------------------------------------------------------------------

/** Names a spec's environment may not set: the runner's own, and those that change how its shell runs. */
const RESERVED_PREFIX = /^(?:FERRY_|CODEBUILD_|AWS_|TF_CLI_ARGS)/;
const RESERVED_NAMES = new Set([
  'PATH',
  'HOME',
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'IFS',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'KUBECONFIG',
  'TF_DATA_DIR',
  'TF_WORKSPACE',
  'TF_IN_AUTOMATION',
  'TF_INPUT',
]);
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const OUTPUTS_KEY = /^outputs\/[A-Za-z0-9!_.*()/-]{1,900}$/;
const ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/([\w+=,.@-]{1,64})$/;
const EKS_CLUSTER_NAME = /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/;
const EKS_CLUSTER_ARN = /^arn:aws[a-z-]*:eks:([a-z0-9-]+):(\d{12}):cluster\/(.+)$/;

/** The key the workflow may use for one component of one deploy: `outputs/<deployId>/<component>.json`. */
export function outputsKeyFor(deployId: string, component: string, action: RunnerAction = 'apply'): string {
  const safe = (part: string) => part.replace(/[^A-Za-z0-9_.-]/g, '-');
  return `${OUTPUTS_PREFIX}${safe(deployId)}/${safe(component)}${action === 'destroy' ? '.destroy' : ''}.json`;
}

/** The Terraform state object of a component in the install's state bucket. */
export function terraformStateKey(component: string): string {
  return `ferry/components/${component}/terraform.tfstate`;
}

class Context {
  constructor(
    readonly request: ApplyRequest,
    readonly options: RunnerOptions,
  ) {}

  fail(field: string, why: string): never {
    const { request } = this;
    throw new RunnerInputError(
      `deploy ${request.deployId} of ${request.component} to install ${request.install.id}: ${field} ${why}`,
    );
  }

  /** Copies a spec's environment, refusing the names that belong to the runner. */
  environment(path: string, environment: Readonly<Record<string, string>>): Record<string, string> {
    const refused = Object.keys(environment).filter(
      (name) => RESERVED_PREFIX.test(name) || RESERVED_NAMES.has(name),
    );
    if (refused.length > 0) {
      this.fail(
        formatPath(path, [refused[0]!]),
        `may not be set: ${refused.join(', ')} belong to the deploy runner (FERRY_*, CODEBUILD_*, AWS_*,` +
          ' TF_CLI_ARGS*, and names that change how its shell runs)',
      );
    }
    return { ...environment };
  }
}

function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

function checkOptions(context: Context): void {
  const { request, options } = context;
  const { install } = request;
  if (!S3_BUCKET.test(options.outputsBucket)) {
    context.fail('options.outputsBucket', `'${options.outputsBucket}' is not an S3 bucket name`);
  }
  if (!OUTPUTS_KEY.test(options.outputsKey) || options.outputsKey.split('/').includes('..')) {
    context.fail(
      'options.outputsKey',
      `'${options.outputsKey}' must be a key under ${OUTPUTS_PREFIX} (letters, digits and !_.*()/-):` +
        ' the runner may write nothing else',
    );
  }
  const role = ROLE_ARN.exec(options.roleArn);
  const expectedName = installRoleName(options.tenant, install.id);
  if (!role || role[2] !== install.accountId || role[3] !== expectedName) {
    context.fail(
      'options.roleArn',
      `'${options.roleArn}' is not the install's role (${expectedName} in account ${install.accountId})`,
    );
  }
  if (options.externalId === '') context.fail('options.externalId', 'is empty');
}

function commonEnvironment(context: Context, action: RunnerAction): Record<string, string> {
  const { request, options } = context;
  return {
    FERRY_ACTION: action,
    FERRY_DEPLOY_ID: request.deployId,
    FERRY_COMPONENT: request.component,
    FERRY_INSTALL_ID: request.install.id,
    FERRY_INSTALL_ACCOUNT: request.install.accountId,
    FERRY_INSTALL_REGION: request.install.region,
    FERRY_INSTALL_ROLE_ARN: options.roleArn,
    FERRY_EXTERNAL_ID: options.externalId,
    FERRY_SESSION_NAME: sessionNameFor(request.deployId),
    FERRY_OUTPUTS_BUCKET: options.outputsBucket,
    FERRY_OUTPUTS_KEY: options.outputsKey,
    FERRY_ARTIFACT_URI: request.artifact.uri,
  };
}

function clusterName(context: Context, spec: HelmSpec): string {
  const { install } = context.request;
  if (spec.cluster === undefined) {
    context.fail('spec.cluster', "is required in AWS: a chart deploys to the install's EKS cluster");
  }
  const arn = EKS_CLUSTER_ARN.exec(spec.cluster);
  if (arn && (arn[1] !== install.region || arn[2] !== install.accountId)) {
    context.fail(
      'spec.cluster',
      `'${spec.cluster}' is not a cluster of the install (account ${install.accountId}, ${install.region})`,
    );
  }
  const name = arn ? arn[3]! : spec.cluster;
  if (!EKS_CLUSTER_NAME.test(name)) {
    context.fail('spec.cluster', `'${spec.cluster}' is not an EKS cluster name or ARN`);
  }
  return name;
}

function helmPlan(context: Context, spec: HelmSpec, action: RunnerAction): RunnerPlan {
  const { request } = context;
  const variables: Record<string, string> = {
    FERRY_EKS_CLUSTER: clusterName(context, spec),
    FERRY_HELM_RELEASE: spec.releaseName ?? request.component,
    FERRY_HELM_NAMESPACE: spec.namespace,
  };
  const install = [SETUP, INSTALL_HELM];
  const preBuild = [ASSUME_INSTALL_ROLE, KUBECONFIG];
  if (action === 'destroy') {
    return { variables, install, preBuild, build: [HELM_UNINSTALL, NO_OUTPUTS] };
  }

  let pull: string;
  const chart = request.artifact.chart ?? (spec.chart.kind === 'prebuilt' ? spec.chart : undefined);
  if (chart !== undefined) {
    const repo = chart.repo.replace(/\/+$/, '');
    Object.assign(variables, {
      FERRY_CHART_REPO: repo,
      FERRY_CHART_NAME: chart.name,
      FERRY_CHART_VERSION: chart.version,
    });
    pull = repo.startsWith('oci://') ? PULL_OCI_CHART : PULL_REPO_CHART;
  } else {
    let registry: string;
    try {
      const reference = parseReference(request.artifact.uri);
      if (reference.digest === undefined) context.fail('artifact.uri', 'names no digest');
      registry = reference.registry;
    } catch (error) {
      if (!(error instanceof InvalidReferenceError)) throw error;
      context.fail('artifact.uri', `is not the synced chart's reference: ${error.message}`);
    }
    Object.assign(variables, {
      FERRY_CHART_REF: request.artifact.uri.replace(/^oci:\/\//, ''),
      FERRY_REGISTRY_HOST: registry,
    });
    pull = PULL_SYNCED_CHART;
  }

  spec.valuesFiles.forEach((file, index) => {
    const field = `spec.valuesFiles[${index}]`;
    if (/^https:\/\/\S+$/.test(file) || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/\S+$/.test(file)) {
      variables[`FERRY_HELM_VALUES_FILE_${index}`] = file;
      return;
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(file)) {
      context.fail(field, `'${file}' must be a path in the chart, an https:// URL or an s3:// object`);
    }
    if (file.startsWith('/') || file.split('/').includes('..')) {
      context.fail(field, `'${file}' must be a relative path inside the chart (no leading '/' and no '..')`);
    }
    variables[`FERRY_HELM_VALUES_FILE_${index}`] = file;
  });
  variables.FERRY_HELM_VALUES_FILE_COUNT = String(spec.valuesFiles.length);
  variables.FERRY_HELM_VALUES = JSON.stringify(spec.values);
  return {
    variables,
    install,
    preBuild,
    build: [pull, FIND_CHART_DIR, HELM_UPGRADE, HELM_RESULT],
  };
}

function terraformPlanOf(context: Context, spec: TerraformSpec, action: RunnerAction): RunnerPlan {
  const { request, options } = context;
  if (!versionAtLeast(spec.terraformVersion, MIN_TERRAFORM_VERSION)) {
    context.fail(
      'spec.terraformVersion',
      `${spec.terraformVersion} is older than ${MIN_TERRAFORM_VERSION}: the install's state bucket locks` +
        ' with S3 lock files (use_lockfile), which Terraform supports from 1.10',
    );
  }
  if (options.stateBucket === undefined || !S3_BUCKET.test(options.stateBucket)) {
    context.fail(
      'options.stateBucket',
      options.stateBucket === undefined
        ? "is required for terraform: the install's state bucket (the access stack's StateBucketName output)"
        : `'${options.stateBucket}' is not an S3 bucket name`,
    );
  }
  const variables: Record<string, string> = {
    ...context.environment('spec.environment', spec.environment),
    FERRY_TERRAFORM_VERSION: spec.terraformVersion,
    FERRY_TF_STATE_BUCKET: options.stateBucket,
    FERRY_TF_STATE_KEY: terraformStateKey(request.component),
    FERRY_TF_STATE_REGION: request.install.region,
    FERRY_TF_VARIABLES: JSON.stringify(spec.variables),
  };
  const destroy = action === 'destroy';
  return {
    variables,
    install: [SETUP, INSTALL_TERRAFORM, FETCH_PACKAGING_TOOL],
    preBuild: [ASSUME_INSTALL_ROLE],
    build: [
      PULL_MODULE,
      TERRAFORM_BACKEND,
      TERRAFORM_INIT,
      terraformPlan(destroy),
      TERRAFORM_APPLY,
      destroy ? NO_OUTPUTS : TERRAFORM_RESULT,
    ],
  };
}

function customPlan(context: Context, spec: CustomSpec, action: RunnerAction): RunnerPlan {
  const step = action === 'destroy' ? spec.plugin.destroy : spec.plugin.deploy;
  if (!step) {
    return { variables: {}, install: [SETUP], preBuild: [], build: [PLUGIN_HAS_NO_DESTROY, NO_OUTPUTS] };
  }
  // The plugin's deploy step, or its destroy step: the same contract, the same way to run.
  const deploy = step;
  const variables: Record<string, string> = {
    ...context.environment(
      `spec.plugin.${action === 'destroy' ? 'destroy' : 'deploy'}.environment`,
      deploy.environment,
    ),
    FERRY_PLUGIN_IMAGE: spec.plugin.image,
    FERRY_PLUGIN_COMMAND_COUNT: String(deploy.commands.length),
  };
  deploy.commands.forEach((line, index) => {
    variables[`FERRY_PLUGIN_COMMAND_${index}`] = line;
  });
  return {
    variables,
    install: [SETUP, CHECK_PLUGIN_IMAGE],
    preBuild: [ASSUME_INSTALL_ROLE],
    build: [PLUGIN_DEPLOY],
    image: spec.plugin.image,
  };
}

interface RunnerPlan {
  readonly variables: Record<string, string>;
  readonly install: string[];
  readonly preBuild: string[];
  readonly build: string[];
  readonly image?: string;
}

function planFor(context: Context, action: RunnerAction): RunnerPlan {
  const { spec } = context.request;
  switch (spec.type) {
    case 'helm':
      checkOptions(context);
      return helmPlan(context, spec, action);
    case 'terraform':
      checkOptions(context);
      return terraformPlanOf(context, spec, action);
    case 'custom':
      checkOptions(context);
      return customPlan(context, spec, action);
    default:
      return context.fail(
        'spec.type',
        `'${spec.type}' is not deployed by the deploy runner: image and dockerfile components run on ECS`,
      );
  }
}

/**
 * The build that applies (or, with `action: 'destroy'`, removes) one component in one install on the
 * deploy runner. Throws RunnerInputError, naming the field, for what cannot run: a type the runner
 * does not deploy (image, dockerfile: ECS), a helm chart without a cluster, Terraform older than
 * 1.10, a spec environment setting the runner's own names, options that do not fit the install.
 */
export function runnerBuild(request: ApplyRequest, options: RunnerOptions): RunnerBuild {
  const context = new Context(request, options);
  const action = options.action ?? 'apply';
  const plan = planFor(context, action);
  const buildspec: RunnerBuildspec = {
    version: '0.2',
    env: { shell: 'bash' },
    phases: {
      install: { commands: plan.install },
      // CodeBuild refuses a phase without commands.
      ...(plan.preBuild.length > 0 && { pre_build: { commands: plan.preBuild } }),
      build: { commands: [...plan.build, WRITE_RESULT] },
    },
  };
  const variables = { ...plan.variables, ...commonEnvironment(context, action) };
  return {
    // YAML 1.1, as the build agent's buildspecs: values such as `yes` stay quoted for CodeBuild.
    buildspec: stringify(buildspec, { version: '1.1', lineWidth: 0 }),
    environment: Object.entries(variables).map(([Name, Value]) => ({ Name, Value, Type: 'PLAINTEXT' })),
    ...(plan.image !== undefined && { image: plan.image }),
  };
}

/** What the runner writes: every output as a string, and the names of those never to be stored. */
const RunnerOutputs = z
  .strictObject({
    outputs: z.record(z.string(), z.string()),
    sensitive: z.array(z.string()),
  })
  .superRefine((value, ctx) => {
    value.sensitive.forEach((name, index) => {
      if (!Object.hasOwn(value.outputs, name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sensitive', index],
          message: `names '${name}', which is not an output`,
        });
      }
    });
  });

/**
 * Reads the outputs a runner build wrote to `s3://bucket/key`, checks them, deletes the object and
 * answers them. Throws RunnerOutputsError naming the object when it is missing or malformed (and
 * then leaves it for the bucket's lifecycle, to be looked at).
 */
export async function readRunnerOutputs(s3: S3Client, bucket: string, key: string): Promise<ApplyResult> {
  const where = `s3://${bucket}/${key}`;
  let text: string;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (object.Body === undefined)
      throw new RunnerOutputsError(`the deploy runner's outputs ${where} are empty`);
    text = await object.Body.transformToString('utf8');
  } catch (error) {
    if (error instanceof RunnerOutputsError) throw error;
    const failure = error as Error;
    if (failure.name === 'NoSuchKey') {
      throw new RunnerOutputsError(
        `the deploy runner's outputs ${where} do not exist: its build did not write them` +
          ' (it failed before its last step) or they were read already',
      );
    }
    throw new RunnerOutputsError(
      `cannot read the deploy runner's outputs ${where}: ${failure.name}: ${failure.message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RunnerOutputsError(
      `the deploy runner's outputs ${where} are not JSON: ${(error as Error).message}`,
    );
  }
  const checked = RunnerOutputs.safeParse(parsed);
  if (!checked.success) {
    const problems = checked.error.issues.map(
      (issue) => `${formatPath('', issue.path) || '(the object)'}: ${issue.message}`,
    );
    throw new RunnerOutputsError(
      `the deploy runner's outputs ${where} are not {"outputs": {name: string}, "sensitive": [name]}: ` +
        problems.join('; '),
    );
  }
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return { outputs: checked.data.outputs, sensitiveOutputs: checked.data.sensitive };
}
