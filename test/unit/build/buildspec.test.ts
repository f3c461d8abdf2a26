// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the expected strings are shell text
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import {
  type BuildPlan,
  type Buildspec,
  buildspecFor,
  EXPORTED_VARIABLES,
  imageOverrideFor,
  toYaml,
} from '../../../lambda/build/buildspec';
import { ComponentSpec } from '../../../lambda/domain/schemas';

const target = {
  registry: '111122223333.dkr.ecr.eu-west-1.amazonaws.com',
  repository: 'ferry-acme/shop/web',
  tag: 'b1',
};

function plan(spec: unknown, extra: Partial<BuildPlan> = {}): BuildPlan {
  return { buildId: 'b1', componentName: 'web', spec: ComponentSpec.parse(spec), target, ...extra };
}

function commandsOf(buildspec: Buildspec): string[] {
  const { install, pre_build, build, post_build } = buildspec.phases;
  return [install, pre_build, build, post_build].flatMap((phase) => phase?.commands ?? []);
}

const gitSource = { repo: 'https://github.com/acme/shop.git', ref: 'v1.2.0', path: 'services/web' };
const terraform = { type: 'terraform', source: gitSource, terraformVersion: '1.9.8' };
const dockerfile = {
  type: 'dockerfile',
  source: gitSource,
  dockerfile: 'docker/Dockerfile',
  target: 'runtime',
  buildArgs: { NODE_VERSION: '22', FLAG: 'yes' },
};
const helmSource = { type: 'helm', chart: { kind: 'source', source: gitSource } };
const publicImage = { type: 'image', image: { uri: 'docker.io/library/nginx:1.27' } };
const privateImage = {
  type: 'image',
  image: {
    uri: '444455556666.dkr.ecr.us-east-2.amazonaws.com/vendor/api:2.0',
    roleArn: 'arn:aws:iam::444455556666:role/ferry-pull',
  },
};
const custom = {
  type: 'custom',
  plugin: {
    image: 'public.ecr.aws/acme/ferry-plugin:1.0',
    build: { commands: ['make artifact', './push.sh "$FERRY_ARTIFACT_REF"'], environment: { STAGE: 'prod' } },
    deploy: { commands: ['./deploy.sh'] },
  },
};

describe('buildspecFor', () => {
  it('declares the variables every build exports and runs in bash', () => {
    const buildspec = buildspecFor(plan(terraform));
    expect(buildspec.version).toBe('0.2');
    expect(buildspec.env.shell).toBe('bash');
    expect(buildspec.env['exported-variables']).toEqual([...EXPORTED_VARIABLES]);
    expect(buildspec.env.variables).toMatchObject({
      FERRY_BUILD_ID: 'b1',
      FERRY_COMPONENT: 'web',
      FERRY_ARTIFACT_REF: `${target.registry}/ferry-acme/shop/web:b1`,
      FERRY_REGISTRY_REGION: 'eu-west-1',
    });
  });

  it('starts every command with set -euo pipefail, and every command is valid bash', () => {
    for (const spec of [terraform, dockerfile, helmSource, publicImage, privateImage, custom]) {
      for (const command of commandsOf(buildspecFor(plan(spec)))) {
        expect(command.startsWith('set -euo pipefail\n')).toBe(true);
        expect(() => execFileSync('bash', ['-n', '-c', command], { stdio: 'pipe' })).not.toThrow();
      }
    }
  });

  it('fetches the packaging tool only without FERRY_PACKAGE, and logs in to ECR only when asked', () => {
    const buildspec = buildspecFor(plan(terraform));
    const install = buildspec.phases.install?.commands.join('\n') ?? '';
    expect(install).toContain('if [ -z "${FERRY_PACKAGE:-}" ]; then');
    expect(install).toContain('aws s3 cp --quiet "${FERRY_TOOLS_S3_URI:?');
    expect(install).toContain('export FERRY_PACKAGE="node /tmp/ferry-package.cjs"');
    const login = buildspec.phases.pre_build?.commands[0] ?? '';
    expect(login).toContain('if [ -n "${FERRY_ECR_LOGIN:-}" ]; then');
    expect(login).toContain('aws ecr get-login-password --region "$FERRY_REGISTRY_REGION"');
    expect(login).toContain('export FERRY_REGISTRY_USERNAME=AWS FERRY_REGISTRY_PASSWORD');
  });

  it('omits the region of a registry that is not ECR', () => {
    const buildspec = buildspecFor(plan(terraform, { target: { ...target, registry: '127.0.0.1:5000' } }));
    expect(buildspec.env.variables.FERRY_REGISTRY_REGION).toBeUndefined();
    expect(buildspec.phases.pre_build?.commands[0]).toContain('"$(aws ecr get-login-password)"');
  });

  it('builds a terraform component: clone, checkout, path check, then the packaging tool', () => {
    const buildspec = buildspecFor(plan(terraform));
    expect(buildspec.env.variables).toMatchObject({
      FERRY_SOURCE_REPO: gitSource.repo,
      FERRY_SOURCE_REF: 'v1.2.0',
      FERRY_SOURCE_PATH: 'services/web',
      GIT_TERMINAL_PROMPT: '0',
    });
    const preBuild = buildspec.phases.pre_build?.commands ?? [];
    expect(preBuild[1]).toContain('git clone --quiet -- "$FERRY_SOURCE_REPO" "$FERRY_WORK_DIR/src"');
    expect(preBuild[2]).toContain('checkout --quiet --detach "$commit"');
    expect(preBuild[2]).toContain('SOURCE_REVISION="$(git -C "$FERRY_WORK_DIR/src" rev-parse HEAD)"');
    expect(preBuild[3]).toContain(
      `echo "path '$FERRY_SOURCE_PATH' does not exist in $FERRY_SOURCE_REPO at $FERRY_SOURCE_REF" >&2`,
    );
    expect(buildspec.phases.build.commands).toEqual([
      [
        'set -euo pipefail',
        'rm -f "$FERRY_ARTIFACT_ENV"',
        `eval "$FERRY_PACKAGE"' -- terraform "$FERRY_SOURCE_DIR" --to "$FERRY_ARTIFACT_REF"` +
          ` --env-file "$FERRY_ARTIFACT_ENV"'`,
        'set -a; . "$FERRY_ARTIFACT_ENV"; set +a',
      ].join('\n'),
    ]);
  });

  it('builds a source helm chart with the packaging tool', () => {
    const buildspec = buildspecFor(plan(helmSource));
    expect(buildspec.env.variables.FERRY_SOURCE_PATH).toBe('services/web');
    expect(buildspec.phases.build.commands.join('\n')).toContain(
      `' -- helm "$FERRY_SOURCE_DIR" --to "$FERRY_ARTIFACT_REF" --env-file "$FERRY_ARTIFACT_ENV"'`,
    );
  });

  it('refuses to build a prebuilt helm chart', () => {
    const prebuilt = {
      type: 'helm',
      chart: {
        kind: 'prebuilt',
        repo: 'https://charts.bitnami.com/bitnami',
        name: 'redis',
        version: '19.0.0',
      },
    };
    expect(() => buildspecFor(plan(prebuilt))).toThrow('a prebuilt Helm chart is recorded, never built');
  });

  it('builds a dockerfile with buildah, pushes with credentials only when set, then inspects', () => {
    const buildspec = buildspecFor(plan(dockerfile));
    expect(buildspec.env.variables).toMatchObject({
      FERRY_DOCKERFILE: 'docker/Dockerfile',
      FERRY_BUILD_TARGET: 'runtime',
      FERRY_BUILD_ARG_0: 'NODE_VERSION=22',
      FERRY_BUILD_ARG_1: 'FLAG=yes',
    });
    expect(buildspec.phases.install?.commands.join('\n')).toContain('command -v buildah');
    expect(buildspec.phases.pre_build?.commands.join('\n')).toContain(`echo "dockerfile '$FERRY_DOCKERFILE'`);
    const [bud, push, inspect] = buildspec.phases.build.commands;
    expect(bud?.replace(/ \\\n\s*/g, ' ')).toBe(
      'set -euo pipefail\nbuildah bud --isolation chroot --storage-driver vfs --layers=false ' +
        '-f "$FERRY_SOURCE_DIR/$FERRY_DOCKERFILE" --target "$FERRY_BUILD_TARGET" ' +
        '--build-arg "$FERRY_BUILD_ARG_0" --build-arg "$FERRY_BUILD_ARG_1" ' +
        '-t "$FERRY_ARTIFACT_REF" "$FERRY_SOURCE_DIR"',
    );
    expect(push).toContain('if [ -n "${FERRY_REGISTRY_USERNAME:-}" ]; then');
    expect(push).toContain('--creds "$FERRY_REGISTRY_USERNAME:${FERRY_REGISTRY_PASSWORD:-}"');
    expect(push).toContain(
      'if [ "${FERRY_REGISTRY_INSECURE:-}" = 1 ]; then set -- "$@" --tls-verify=false; fi',
    );
    expect(push).toContain('buildah push --storage-driver vfs "$@" "$FERRY_ARTIFACT_REF"');
    expect(inspect).toContain(`' -- inspect "$FERRY_ARTIFACT_REF" --env-file "$FERRY_ARTIFACT_ENV"'`);
  });

  it('leaves out --target when the dockerfile names none', () => {
    const { target: _target, ...noTarget } = dockerfile;
    const buildspec = buildspecFor(plan({ ...noTarget, buildArgs: {} }));
    expect(buildspec.env.variables.FERRY_BUILD_TARGET).toBeUndefined();
    expect(buildspec.phases.build.commands[0]).not.toContain('--target');
    expect(buildspec.phases.build.commands[0]).not.toContain('--build-arg');
  });

  it('copies a public image without cloning, its reference being the source revision', () => {
    const buildspec = buildspecFor(plan(publicImage));
    expect(buildspec.env.variables.FERRY_SOURCE_IMAGE).toBe('docker.io/library/nginx:1.27');
    expect(buildspec.env.variables.FERRY_SOURCE_REPO).toBeUndefined();
    const all = commandsOf(buildspec).join('\n');
    expect(all).not.toContain('git clone');
    expect(all).not.toContain('sts assume-role');
    expect(buildspec.phases.build.commands.join('\n')).toContain(
      `' -- copy "$FERRY_SOURCE_IMAGE" --to "$FERRY_ARTIFACT_REF" --env-file "$FERRY_ARTIFACT_ENV"'`,
    );
    expect(buildspec.phases.build.commands.join('\n')).toContain(
      'export SOURCE_REVISION="$FERRY_SOURCE_IMAGE"',
    );
  });

  it('reads a private ECR image through its role, in CodeBuild only', () => {
    const buildspec = buildspecFor(plan(privateImage));
    expect(buildspec.env.variables).toMatchObject({
      FERRY_SOURCE_ROLE_ARN: 'arn:aws:iam::444455556666:role/ferry-pull',
      FERRY_SOURCE_REGION: 'us-east-2',
      FERRY_SOURCE_SESSION_NAME: 'ferry-b1',
    });
    const login =
      buildspec.phases.pre_build?.commands.find((command) => command.includes('assume-role')) ?? '';
    expect(login).toContain('if [ -n "${FERRY_ECR_LOGIN:-}" ]; then');
    expect(login).toContain('--role-arn "$FERRY_SOURCE_ROLE_ARN"');
    expect(login).toContain('aws ecr get-login-password --region "$FERRY_SOURCE_REGION"');
    expect(login).toContain('export FERRY_SOURCE_USERNAME=AWS FERRY_SOURCE_PASSWORD');
  });

  it('runs a custom plugin in its own image with its environment, then inspects what it pushed', () => {
    const custom1 = plan(custom);
    const buildspec = buildspecFor(custom1);
    expect(imageOverrideFor(custom1)).toBe('public.ecr.aws/acme/ferry-plugin:1.0');
    expect(buildspec.env.variables).toMatchObject({
      STAGE: 'prod',
      FERRY_PLUGIN_IMAGE: 'public.ecr.aws/acme/ferry-plugin:1.0',
      FERRY_ARTIFACT_REF: `${target.registry}/ferry-acme/shop/web:b1`,
    });
    const build = buildspec.phases.build.commands;
    expect(build[0]).toContain('export FERRY_OUTPUT_ENV="$FERRY_WORK_DIR/.ferry/plugin-output.env"');
    expect(build.slice(1, 3)).toEqual([
      'set -euo pipefail\nmake artifact',
      'set -euo pipefail\n./push.sh "$FERRY_ARTIFACT_REF"',
    ]);
    expect(build[4]).toContain(`' -- inspect "$FERRY_ARTIFACT_REF" --env-file "$FERRY_ARTIFACT_ENV"'`);
    expect(build[4]).toContain("the plugin's build must push its artifact to \\$FERRY_ARTIFACT_REF");
  });

  it("refuses a plugin environment that would set the build's own variables", () => {
    const spec = {
      ...custom,
      plugin: { ...custom.plugin, build: { commands: ['true'], environment: { FERRY_PACKAGE: 'x' } } },
    };
    expect(() => buildspecFor(plan(spec))).toThrow('may not set FERRY_PACKAGE');
  });

  it('gives no image override to the other types', () => {
    for (const spec of [terraform, dockerfile, helmSource, publicImage])
      expect(imageOverrideFor(plan(spec))).toBeUndefined();
  });

  it('checks, after the build, that every exported variable was set', () => {
    const postBuild = buildspecFor(plan(terraform)).phases.post_build?.commands ?? [];
    expect(postBuild).toHaveLength(1);
    expect(postBuild[0]).toContain('if [ "${CODEBUILD_BUILD_SUCCEEDING:-1}" = 1 ]; then');
    expect(postBuild[0]).toContain(`for name in ${EXPORTED_VARIABLES.join(' ')}; do`);
  });
});

describe('source refs', () => {
  it("builds the component's ref unless the build names one", () => {
    expect(buildspecFor(plan(terraform)).env.variables.FERRY_SOURCE_REF).toBe('v1.2.0');
    expect(buildspecFor(plan(terraform, { ref: 'hotfix/db' })).env.variables.FERRY_SOURCE_REF).toBe(
      'hotfix/db',
    );
    const defaulted = { ...terraform, source: { repo: gitSource.repo } };
    expect(buildspecFor(plan(defaulted)).env.variables.FERRY_SOURCE_REF).toBe('main');
  });

  it('overrides the ref of dockerfile and source helm components too', () => {
    expect(buildspecFor(plan(dockerfile, { ref: 'abc1234' })).env.variables.FERRY_SOURCE_REF).toBe('abc1234');
    expect(buildspecFor(plan(helmSource, { ref: 'abc1234' })).env.variables.FERRY_SOURCE_REF).toBe('abc1234');
  });

  it('refuses a ref git would read as an option', () => {
    expect(() => buildspecFor(plan(terraform, { ref: '--upload-pack=touch /tmp/x' }))).toThrow(
      'ref "--upload-pack=touch /tmp/x" is not a branch, tag or commit',
    );
    expect(() => buildspecFor(plan(terraform, { ref: 'main\nrm -rf /' }))).toThrow(
      'is not a branch, tag or commit',
    );
  });
});

describe('shell injection', () => {
  const evil = ['$(rm -rf /)', '`id`', "'; rm -rf / #", '"; rm -rf / #'];

  it.each(evil)('keeps %s out of every command, in env.variables only', (value) => {
    const noSpaces = value.replace(/ /g, '');
    const specs = [
      {
        ...terraform,
        source: { repo: `https://example.com/${noSpaces}.git`, ref: value, path: `x/${value}` },
      },
      {
        ...dockerfile,
        dockerfile: value,
        target: value,
        buildArgs: { A: value },
        source: { ...gitSource, path: value },
      },
      { ...helmSource, chart: { kind: 'source', source: { ...gitSource, ref: value } } },
      {
        ...custom,
        plugin: { ...custom.plugin, build: { commands: ['true'], environment: { STAGE: value } } },
      },
    ];
    for (const spec of specs) {
      for (const built of [buildspecFor(plan(spec)), buildspecFor(plan(spec, { ref: value }))]) {
        for (const command of commandsOf(built)) {
          expect(command).not.toContain(value);
          expect(command).not.toContain(noSpaces);
        }
        expect(Object.values(built.env.variables).some((variable) => variable.includes(value))).toBe(true);
      }
    }
  });
});

describe('toYaml', () => {
  it('parses back to the same buildspec', () => {
    for (const spec of [terraform, dockerfile, helmSource, publicImage, privateImage, custom]) {
      const buildspec = buildspecFor(plan(spec));
      expect(parse(toYaml(buildspec))).toEqual(buildspec);
    }
  });

  it('keeps strings YAML 1.1 would read as booleans or numbers quoted, for CodeBuild', () => {
    const yaml = toYaml(buildspecFor(plan(dockerfile)));
    expect(yaml).toContain('version: "0.2"');
    expect(yaml).toContain('FERRY_BUILD_ARG_1: FLAG=yes');
    const flagged = toYaml(
      buildspecFor(
        plan({
          ...custom,
          plugin: { ...custom.plugin, build: { commands: ['true'], environment: { ON: 'yes' } } },
        }),
      ),
    );
    expect(flagged).toContain('"ON": "yes"');
    expect(parse(flagged, { version: '1.1' }).env.variables.ON).toBe('yes');
  });
});
