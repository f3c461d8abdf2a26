/**
 * The buildspec a build runs, generated from its component's spec. The same text runs in AWS
 * CodeBuild (StartBuild `buildspecOverride`) and in the local build agent (local/build-agent.ts), so
 * the differences between the two are decided in shell, from the environment the build is given:
 *
 * - `FERRY_PACKAGE`: the packaging tool as a command (`node /tmp/ferry-package.cjs`). Unset in
 *   CodeBuild, where the install phase downloads it from `FERRY_TOOLS_S3_URI`.
 * - `FERRY_ECR_LOGIN`: set in CodeBuild only; logs in to ECR (the tenant registry, and a private
 *   ECR source image through its role) and exports `FERRY_REGISTRY_USERNAME/PASSWORD` and
 *   `FERRY_SOURCE_USERNAME/PASSWORD`.
 * - `FERRY_REGISTRY_INSECURE=1`: the target registry speaks plain HTTP (local mode).
 *
 * Nothing from a spec or a request is ever written into a command: every value goes into
 * `env.variables` and commands reference it quoted, so no spec can inject shell. CodeBuild runs each
 * command as its own script (the environment and the working directory carry over, shell options do
 * not), so every generated command starts with `set -euo pipefail` and stands on its own.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell text, where ${VAR:-} is meant
import { stringify } from 'yaml';
import type { ComponentSpec } from '../domain/schemas';

/** Where the artifact goes: `<registry>/<repository>:<tag>`. */
export interface BuildTarget {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
}

export interface BuildPlan {
  readonly buildId: string;
  readonly componentName: string;
  readonly spec: ComponentSpec;
  /** The requested source ref; overrides `spec.source.ref` for git types, ignored by the others. */
  readonly ref?: string;
  readonly target: BuildTarget;
}

export interface Phase {
  commands: string[];
}

export interface Buildspec {
  version: '0.2';
  env: { shell: 'bash'; variables: Record<string, string>; 'exported-variables': string[] };
  phases: { install?: Phase; pre_build?: Phase; build: Phase; post_build?: Phase };
}

/** What a build reports (CodeBuild exported variables); all are set when a build succeeds. */
export const EXPORTED_VARIABLES = [
  'ARTIFACT_DIGEST',
  'ARTIFACT_SIZE',
  'ARTIFACT_MEDIA_TYPE',
  'ARTIFACT_URI',
  'SOURCE_REVISION',
] as const;
export type ExportedVariable = (typeof EXPORTED_VARIABLES)[number];

/** Where CodeBuild keeps the packaging tool it downloads. */
export const PACKAGING_TOOL_PATH = '/tmp/ferry-package.cjs';

type GitSource = Extract<ComponentSpec, { type: 'terraform' }>['source'];
type CustomSpec = Extract<ComponentSpec, { type: 'custom' }>;

const PRIVATE_ECR_HOST = /^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/;
/** Names a plugin's environment may not set: the build's own and CodeBuild's. */
const RESERVED_NAME = /^(?:FERRY_|CODEBUILD_)/;

/** One command: `set -euo pipefail`, then the lines. */
export function command(...lines: string[]): string {
  return ['set -euo pipefail', ...lines].join('\n');
}

/**
 * Runs the packaging tool with `args` (constant text referencing variables). `FERRY_PACKAGE` is a
 * command line the operator sets (`"/usr/bin/node" "/data/ferry-package.cjs"`), so it is evaluated
 * as shell words; the arguments stay quoted references, expanded once by that evaluation. The `--`
 * first keeps Node 20 from reading the tool's `--env-file` as its own option.
 */
function ferryPackage(args: string): string {
  return `eval "$FERRY_PACKAGE"' -- ${args} --env-file "$FERRY_ARTIFACT_ENV"'`;
}

/** Runs the packaging tool, then exports the `ARTIFACT_*` lines it wrote. */
function packageAndExport(args: string): string {
  return command(
    'rm -f "$FERRY_ARTIFACT_ENV"',
    ferryPackage(args),
    'set -a; . "$FERRY_ARTIFACT_ENV"; set +a',
  );
}

const SETUP = command(
  'export FERRY_WORK_DIR="$PWD"',
  'export FERRY_ARTIFACT_ENV="$FERRY_WORK_DIR/.ferry/artifact.env"',
  'mkdir -p "$FERRY_WORK_DIR/.ferry"',
);

/** Fetches the packaging tool from the tools asset unless `FERRY_PACKAGE` names it already. */
export const FETCH_PACKAGING_TOOL = command(
  'if [ -z "${FERRY_PACKAGE:-}" ]; then',
  '  aws s3 cp --quiet "${FERRY_TOOLS_S3_URI:?set FERRY_PACKAGE or FERRY_TOOLS_S3_URI}" \\',
  `    ${PACKAGING_TOOL_PATH}`,
  `  export FERRY_PACKAGE="node ${PACKAGING_TOOL_PATH}"`,
  'fi',
);

function registryLogin(region: string | undefined): string {
  const regionOption = region === undefined ? '' : ' --region "$FERRY_REGISTRY_REGION"';
  return command(
    'if [ -n "${FERRY_ECR_LOGIN:-}" ]; then',
    `  FERRY_REGISTRY_PASSWORD="$(aws ecr get-login-password${regionOption})"`,
    '  export FERRY_REGISTRY_USERNAME=AWS FERRY_REGISTRY_PASSWORD',
    'fi',
  );
}

const SOURCE_LOGIN = command(
  'if [ -n "${FERRY_ECR_LOGIN:-}" ]; then',
  '  credentials="$(aws sts assume-role --role-arn "$FERRY_SOURCE_ROLE_ARN" \\',
  '    --role-session-name "$FERRY_SOURCE_SESSION_NAME" \\',
  "    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)\"",
  '  read -r key secret token <<<"$credentials"',
  '  FERRY_SOURCE_PASSWORD="$(AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \\',
  '    AWS_SESSION_TOKEN="$token" aws ecr get-login-password --region "$FERRY_SOURCE_REGION")"',
  '  unset credentials key secret token',
  '  export FERRY_SOURCE_USERNAME=AWS FERRY_SOURCE_PASSWORD',
  'fi',
);

const SRC = '"$FERRY_WORK_DIR/src"';

const CLONE = command(`git clone --quiet -- "$FERRY_SOURCE_REPO" ${SRC}`);

/** A branch (local or only on origin), a tag or a commit; checked out detached. */
const CHECKOUT = command(
  `if ! commit="$(git -C ${SRC} rev-parse --verify --quiet "$FERRY_SOURCE_REF^{commit}" \\`,
  `  || git -C ${SRC} rev-parse --verify --quiet "origin/$FERRY_SOURCE_REF^{commit}")"; then`,
  `  echo "ref '$FERRY_SOURCE_REF' does not exist in $FERRY_SOURCE_REPO: give a branch, tag or commit" >&2`,
  '  exit 1',
  'fi',
  `git -C ${SRC} checkout --quiet --detach "$commit"`,
  `SOURCE_REVISION="$(git -C ${SRC} rev-parse HEAD)"`,
  'export SOURCE_REVISION',
);

const CHECK_PATH = command(
  'if [ ! -e "$FERRY_WORK_DIR/src/$FERRY_SOURCE_PATH" ]; then',
  `  echo "path '$FERRY_SOURCE_PATH' does not exist in $FERRY_SOURCE_REPO at $FERRY_SOURCE_REF" >&2`,
  '  exit 1',
  'fi',
  'if [ ! -d "$FERRY_WORK_DIR/src/$FERRY_SOURCE_PATH" ]; then',
  `  echo "path '$FERRY_SOURCE_PATH' in $FERRY_SOURCE_REPO at $FERRY_SOURCE_REF is not a directory" >&2`,
  '  exit 1',
  'fi',
  'export FERRY_SOURCE_DIR="$FERRY_WORK_DIR/src/$FERRY_SOURCE_PATH"',
);

const CHECK_DOCKERFILE = command(
  'if [ ! -f "$FERRY_SOURCE_DIR/$FERRY_DOCKERFILE" ]; then',
  `  echo "dockerfile '$FERRY_DOCKERFILE' does not exist in path '$FERRY_SOURCE_PATH'` +
    ` of $FERRY_SOURCE_REPO at $FERRY_SOURCE_REF" >&2`,
  '  exit 1',
  'fi',
);

/** CodeBuild's image has no buildah: install it there; elsewhere say what is missing. */
const ENSURE_BUILDAH = command(
  'if ! command -v buildah >/dev/null 2>&1; then',
  '  if [ -n "${CODEBUILD_BUILD_ARN:-}" ]; then',
  '    dnf install -y -q buildah',
  '  else',
  '    echo "buildah is not installed: it builds Dockerfile components" >&2',
  '    exit 1',
  '  fi',
  'fi',
);

/** Credentials and TLS apply to the push only: base images come from their own (public) registries. */
const PUSH = command(
  'set --',
  'if [ -n "${FERRY_REGISTRY_USERNAME:-}" ]; then',
  '  set -- "$@" --creds "$FERRY_REGISTRY_USERNAME:${FERRY_REGISTRY_PASSWORD:-}"',
  'fi',
  'if [ "${FERRY_REGISTRY_INSECURE:-}" = 1 ]; then set -- "$@" --tls-verify=false; fi',
  'buildah push --storage-driver vfs "$@" "$FERRY_ARTIFACT_REF"',
  'buildah rmi --storage-driver vfs --force "$FERRY_ARTIFACT_REF" >/dev/null 2>&1 || true',
);

const PLUGIN_OUTPUT = command(
  'export FERRY_OUTPUT_ENV="$FERRY_WORK_DIR/.ferry/plugin-output.env"',
  'rm -f "$FERRY_OUTPUT_ENV"',
);

/** A plugin may report `SOURCE_REVISION=…` in its output file; otherwise the plugin image stands for it. */
const PLUGIN_REVISION = command(
  'SOURCE_REVISION=""',
  'if [ -f "$FERRY_OUTPUT_ENV" ]; then',
  '  SOURCE_REVISION="$(sed -n \'s/^SOURCE_REVISION=//p\' "$FERRY_OUTPUT_ENV" | tail -n 1)"',
  'fi',
  'export SOURCE_REVISION="${SOURCE_REVISION:-$FERRY_PLUGIN_IMAGE}"',
);

const INSPECT_PLUGIN_ARTIFACT = command(
  'rm -f "$FERRY_ARTIFACT_ENV"',
  `if ! ${ferryPackage('inspect "$FERRY_ARTIFACT_REF"')}; then`,
  '  echo "found no artifact at $FERRY_ARTIFACT_REF: the plugin\'s build must push its artifact to' +
    ' \\$FERRY_ARTIFACT_REF" >&2',
  '  exit 1',
  'fi',
  'set -a; . "$FERRY_ARTIFACT_ENV"; set +a',
);

/** Fails a build that would succeed without reporting its artifact; a failing build is left to its error. */
const CHECK_EXPORTED = command(
  'if [ "${CODEBUILD_BUILD_SUCCEEDING:-1}" = 1 ]; then',
  '  missing=""',
  `  for name in ${EXPORTED_VARIABLES.join(' ')}; do`,
  '    if [ -z "${!name:-}" ]; then missing="$missing $name"; fi',
  '  done',
  '  if [ -n "$missing" ]; then',
  '    echo "the build finished without$missing: its artifact was not pushed and inspected" >&2',
  '    exit 1',
  '  fi',
  'fi',
);

function gitSourceOf(spec: ComponentSpec): GitSource | undefined {
  switch (spec.type) {
    case 'dockerfile':
    case 'terraform':
      return spec.source;
    case 'helm':
      return spec.chart.kind === 'source' ? spec.chart.source : undefined;
    default:
      return undefined;
  }
}

function checkRef(plan: BuildPlan, ref: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (ref.startsWith('-') || /[\u0000-\u001f\u007f]/.test(ref)) {
    throw new Error(
      `build ${plan.buildId} of ${plan.componentName}: ` +
        `ref ${JSON.stringify(ref)} is not a branch, tag or commit`,
    );
  }
}

function ecrRegionOf(host: string): string | undefined {
  return PRIVATE_ECR_HOST.exec(host)?.[1];
}

function pluginEnvironment(plan: BuildPlan, spec: CustomSpec): Record<string, string> {
  const reserved = Object.keys(spec.plugin.build.environment).filter(
    (name) => RESERVED_NAME.test(name) || (EXPORTED_VARIABLES as readonly string[]).includes(name),
  );
  if (reserved.length > 0) {
    throw new Error(
      `build ${plan.buildId} of ${plan.componentName}: the plugin's build environment may not set ` +
        `${reserved.join(', ')} (FERRY_*, CODEBUILD_* and the exported variables belong to the build)`,
    );
  }
  return { ...spec.plugin.build.environment, FERRY_PLUGIN_IMAGE: spec.plugin.image };
}

/** The artifact reference a plan pushes to. */
export function artifactReferenceOf(target: BuildTarget): string {
  return `${target.registry}/${target.repository}:${target.tag}`;
}

/** The buildspec that builds `plan`'s component into an artifact at its target. */
export function buildspecFor(plan: BuildPlan): Buildspec {
  const { spec } = plan;
  if (spec.type === 'helm' && spec.chart.kind === 'prebuilt') {
    throw new Error(
      `build ${plan.buildId} of ${plan.componentName}: a prebuilt Helm chart is recorded, never built`,
    );
  }
  const targetRegion = ecrRegionOf(plan.target.registry);
  const variables: Record<string, string> = {
    ...(spec.type === 'custom' ? pluginEnvironment(plan, spec) : {}),
    FERRY_BUILD_ID: plan.buildId,
    FERRY_COMPONENT: plan.componentName,
    FERRY_ARTIFACT_REF: artifactReferenceOf(plan.target),
    ...(targetRegion !== undefined && { FERRY_REGISTRY_REGION: targetRegion }),
    // A private repository must fail, not wait for a password nobody types.
    GIT_TERMINAL_PROMPT: '0',
  };
  const install = [SETUP, FETCH_PACKAGING_TOOL];
  const preBuild = [registryLogin(targetRegion)];
  const build: string[] = [];

  const source = gitSourceOf(spec);
  if (source !== undefined) {
    const ref = plan.ref ?? source.ref;
    checkRef(plan, ref);
    Object.assign(variables, {
      FERRY_SOURCE_REPO: source.repo,
      FERRY_SOURCE_REF: ref,
      FERRY_SOURCE_PATH: source.path,
    });
    preBuild.push(CLONE, CHECKOUT, CHECK_PATH);
  }

  switch (spec.type) {
    case 'image': {
      variables.FERRY_SOURCE_IMAGE = spec.image.uri;
      if (spec.image.roleArn !== undefined) {
        const host = spec.image.uri.split('/', 1)[0] ?? '';
        Object.assign(variables, {
          FERRY_SOURCE_ROLE_ARN: spec.image.roleArn,
          FERRY_SOURCE_REGION: ecrRegionOf(host) ?? '',
          FERRY_SOURCE_SESSION_NAME: `ferry-${plan.buildId}`.replace(/[^\w+=,.@-]/g, '-').slice(0, 64),
        });
        preBuild.push(SOURCE_LOGIN);
      }
      build.push(
        packageAndExport('copy "$FERRY_SOURCE_IMAGE" --to "$FERRY_ARTIFACT_REF"'),
        command('export SOURCE_REVISION="$FERRY_SOURCE_IMAGE"'),
      );
      break;
    }
    case 'dockerfile': {
      variables.FERRY_DOCKERFILE = spec.dockerfile;
      install.push(ENSURE_BUILDAH);
      preBuild.push(CHECK_DOCKERFILE);
      const options = [
        '--isolation chroot --storage-driver vfs --layers=false',
        '-f "$FERRY_SOURCE_DIR/$FERRY_DOCKERFILE"',
      ];
      if (spec.target !== undefined) {
        variables.FERRY_BUILD_TARGET = spec.target;
        options.push('--target "$FERRY_BUILD_TARGET"');
      }
      Object.entries(spec.buildArgs).forEach(([name, value], index) => {
        variables[`FERRY_BUILD_ARG_${index}`] = `${name}=${value}`;
        options.push(`--build-arg "$FERRY_BUILD_ARG_${index}"`);
      });
      build.push(
        command(`buildah bud ${options.join(' \\\n  ')} \\\n  -t "$FERRY_ARTIFACT_REF" "$FERRY_SOURCE_DIR"`),
        PUSH,
        packageAndExport('inspect "$FERRY_ARTIFACT_REF"'),
      );
      break;
    }
    case 'helm':
      build.push(packageAndExport('helm "$FERRY_SOURCE_DIR" --to "$FERRY_ARTIFACT_REF"'));
      break;
    case 'terraform':
      build.push(packageAndExport('terraform "$FERRY_SOURCE_DIR" --to "$FERRY_ARTIFACT_REF"'));
      break;
    case 'custom':
      build.push(
        PLUGIN_OUTPUT,
        ...spec.plugin.build.commands.map((line) => command(line)),
        PLUGIN_REVISION,
        INSPECT_PLUGIN_ARTIFACT,
      );
      break;
  }

  return {
    version: '0.2',
    env: { shell: 'bash', variables, 'exported-variables': [...EXPORTED_VARIABLES] },
    phases: {
      install: { commands: install },
      pre_build: { commands: preBuild },
      build: { commands: build },
      post_build: { commands: [CHECK_EXPORTED] },
    },
  };
}

/**
 * The buildspec as CodeBuild's `buildspecOverride` text. Written for YAML 1.1 so that values such
 * as `yes` or `on` stay quoted strings for CodeBuild's parser; multi-line commands are literal blocks.
 */
export function toYaml(buildspec: Buildspec): string {
  return stringify(buildspec, { version: '1.1', lineWidth: 0 });
}

/** For `custom`: the image CodeBuild runs the build in (StartBuild imageOverride); undefined for others. */
export function imageOverrideFor(plan: BuildPlan): string | undefined {
  return plan.spec.type === 'custom' ? plan.spec.plugin.image : undefined;
}
