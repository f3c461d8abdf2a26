// biome-ignore-all lint/suspicious/noTemplateCurlyInString: buildspec commands are shell text
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Buildspec, buildspecFor, EXPORTED_VARIABLES } from '../../lambda/build/buildspec';
import { ComponentSpec } from '../../lambda/domain/schemas';
import { runBuildspec } from '../../local/build-agent';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ferry-build-agent-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let counter = 0;
/**
 * A fresh `<dir>/work` for one build; the log lands in `<dir>/build.log`. The space in its path
 * proves the buildspec and the agent quote what they use.
 */
function workDir(): string {
  counter += 1;
  const dir = join(root, `build ${counter}`, 'work');
  mkdirSync(dir, { recursive: true });
  return dir;
}

function buildspec(
  phases: Buildspec['phases'],
  variables: Record<string, string> = {},
  exported: string[] = [],
) {
  const spec: Buildspec = {
    version: '0.2',
    env: { shell: 'bash', variables, 'exported-variables': exported },
    phases,
  };
  return spec;
}

describe('runBuildspec', () => {
  it('runs the phases in order, carrying exported variables and the directory across commands', async () => {
    const lines: string[] = [];
    const spec = buildspec(
      {
        install: { commands: ['export FIRST="installed $GREETING"', 'mkdir -p sub && cd sub'] },
        pre_build: {
          commands: ['export SECOND="$FIRST, then pre_build in $(basename "$PWD")"', 'NOT_EXPORTED=1'],
        },
        build: {
          commands: ['echo "building with $SECOND"', 'export THIRD="${NOT_EXPORTED:-unset} $OVERRIDDEN"'],
        },
        post_build: { commands: ['export SUCCEEDING="$CODEBUILD_BUILD_SUCCEEDING"'] },
      },
      { GREETING: 'hello world', OVERRIDDEN: 'from the buildspec' },
      ['FIRST', 'SECOND', 'THIRD', 'SUCCEEDING', 'NEVER_SET'],
    );

    const result = await runBuildspec(spec, {
      workDir: workDir(),
      env: { OVERRIDDEN: 'from StartBuild' },
      onLog: (line) => lines.push(line),
    });

    expect(result.status).toBe('SUCCEEDED');
    expect(result.failure).toBeUndefined();
    expect(result.phases.map((phase) => [phase.name, phase.status])).toEqual([
      ['install', 'SUCCEEDED'],
      ['pre_build', 'SUCCEEDED'],
      ['build', 'SUCCEEDED'],
      ['post_build', 'SUCCEEDED'],
    ]);
    expect(result.exportedVariables).toEqual({
      FIRST: 'installed hello world',
      SECOND: 'installed hello world, then pre_build in sub',
      THIRD: 'unset from StartBuild',
      SUCCEEDING: '1',
    });
    expect(lines).toContain('building with installed hello world, then pre_build in sub');
    expect(readFileSync(result.logFile, 'utf8')).toContain('building with installed hello world');
    expect(result.logFile).toBe(join(root, `build ${counter}`, 'build.log'));
  });

  it('reports a phase the buildspec leaves out as succeeded', async () => {
    const result = await runBuildspec(buildspec({ build: { commands: ['true'] } }), { workDir: workDir() });
    expect(result.status).toBe('SUCCEEDED');
    expect(result.phases.map((phase) => phase.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'SUCCEEDED',
      'SUCCEEDED',
    ]);
  });

  it('skips build and post_build after a failing pre_build, naming the command and its output', async () => {
    const dir = workDir();
    const result = await runBuildspec(
      buildspec({
        pre_build: {
          commands: ['echo "checking the source"\necho "no such module" >&2\nexit 3', 'touch after'],
        },
        build: { commands: ['touch built'] },
        post_build: { commands: ['touch posted'] },
      }),
      { workDir: dir },
    );

    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => [phase.name, phase.status])).toEqual([
      ['install', 'SUCCEEDED'],
      ['pre_build', 'FAILED'],
      ['build', 'SKIPPED'],
      ['post_build', 'SKIPPED'],
    ]);
    expect(result.failure?.phase).toBe('pre_build');
    expect(result.failure?.message).toContain('PRE_BUILD failed');
    expect(result.failure?.message).toContain('command `echo "checking the source" …`');
    expect(result.failure?.message).toContain('exit status 3');
    expect(result.failure?.message).toMatch(/checking the source\nno such module$/);
    for (const file of ['after', 'built', 'posted']) expect(existsSync(join(dir, file))).toBe(false);
    expect(readFileSync(result.logFile, 'utf8')).toContain('Phase complete: PRE_BUILD State: FAILED');
  });

  it('stops a phase at its first failing command, and runs post_build after a failing build', async () => {
    const dir = workDir();
    const result = await runBuildspec(
      buildspec(
        {
          build: { commands: ['export PARTIAL=yes', 'false', 'touch after'] },
          post_build: {
            commands: ['export SUCCEEDING="$CODEBUILD_BUILD_SUCCEEDING"', 'export SEEN_PARTIAL="$PARTIAL"'],
          },
        },
        {},
        ['SUCCEEDING', 'SEEN_PARTIAL'],
      ),
      { workDir: dir },
    );

    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => phase.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'FAILED',
      'SUCCEEDED',
    ]);
    expect(result.failure).toEqual({
      phase: 'build',
      message: 'BUILD failed: command `false` failed (exit status 1); it printed nothing',
    });
    expect(result.exportedVariables).toEqual({ SUCCEEDING: '0', SEEN_PARTIAL: 'yes' });
    expect(existsSync(join(dir, 'after'))).toBe(false);
  });

  it('does not carry shell options from one command to the next', async () => {
    const result = await runBuildspec(
      buildspec(
        { build: { commands: ['set -euo pipefail\ntrue', 'export AFTER="${UNSET_VARIABLE}ok"'] } },
        {},
        ['AFTER'],
      ),
      { workDir: workDir() },
    );
    expect(result.status).toBe('SUCCEEDED');
    expect(result.exportedVariables).toEqual({ AFTER: 'ok' });
  });

  it('kills a command that outlives the timeout and fails the build', async () => {
    const started = Date.now();
    const result = await runBuildspec(
      buildspec({
        build: { commands: ['echo waiting', 'tail -f /dev/null & wait'] },
        post_build: { commands: ['true'] },
      }),
      { workDir: workDir(), timeoutMs: 1000 },
    );

    expect(Date.now() - started).toBeLessThan(15_000);
    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => phase.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'FAILED',
      'SKIPPED',
    ]);
    expect(result.failure?.phase).toBe('build');
    expect(result.failure?.message).toContain('BUILD timed out');
    expect(result.failure?.message).toContain('timeout of 1000 ms');
    expect(result.failure?.message).toContain('`tail -f /dev/null & wait`');
  });
});

describe('the generated buildspec of a terraform component, run locally', () => {
  let repo: string;
  let firstCommit: string;
  let releaseCommit: string;
  let fakePackage: string;

  function git(...args: string[]): string {
    return execFileSync(
      'git',
      [
        '-c',
        'user.name=Ferry Test',
        '-c',
        'user.email=test@ferry.invalid',
        '-c',
        'commit.gpgsign=false',
        ...args,
      ],
      { cwd: repo, encoding: 'utf8' },
    ).trim();
  }

  beforeAll(() => {
    repo = join(root, 'infra');
    mkdirSync(join(repo, 'modules', 'db'), { recursive: true });
    git('init', '--quiet', '--initial-branch=main');
    writeFileSync(join(repo, 'modules', 'db', 'main.tf'), 'v1\n');
    git('add', '.');
    git('commit', '--quiet', '-m', 'db v1');
    firstCommit = git('rev-parse', 'HEAD');
    git('checkout', '--quiet', '-b', 'release');
    writeFileSync(join(repo, 'modules', 'db', 'main.tf'), 'v2\n');
    git('commit', '--quiet', '-am', 'db v2');
    releaseCommit = git('rev-parse', 'HEAD');
    git('checkout', '--quiet', 'main');

    // Stands in for the packaging tool: records what it was asked and writes the env file.
    fakePackage = join(root, 'fake package.sh');
    writeFileSync(
      fakePackage,
      [
        'set -eu',
        'record=$1',
        'shift',
        '[ "$1" = -- ] || { echo "the tool is called with -- first, for Node 20" >&2; exit 2; }',
        'kind=$2 dir=$3',
        'shift 3',
        'while [ $# -gt 0 ]; do',
        '  case $1 in',
        '    --to) to=$2; shift 2 ;;',
        '    --env-file) env_file=$2; shift 2 ;;',
        '    *) echo "unexpected argument $1" >&2; exit 2 ;;',
        '  esac',
        'done',
        'printf "%s\\n" "$kind" "$dir" "$to" "$(cat "$dir/main.tf")" >"$record"',
        'cat >"$env_file" <<EOF',
        `ARTIFACT_DIGEST=sha256:${'a'.repeat(64)}`,
        'ARTIFACT_SIZE=1234',
        'ARTIFACT_MEDIA_TYPE=application/vnd.oci.image.manifest.v1+json',
        `ARTIFACT_URI=\${to%:*}@sha256:${'a'.repeat(64)}`,
        'EOF',
      ].join('\n'),
    );
  });

  function terraformBuild(source: { path: string; ref?: string }, ref?: string) {
    const spec = ComponentSpec.parse({
      type: 'terraform',
      source: { repo, ...source },
      terraformVersion: '1.9.8',
    });
    const dir = workDir();
    const record = join(dir, '..', 'package-record.txt');
    const buildspecText = buildspecFor({
      buildId: 'build_01',
      componentName: 'db',
      spec,
      ...(ref !== undefined && { ref }),
      target: { registry: '127.0.0.1:5000', repository: 'ferry-local/shop/db', tag: 'build_01' },
    });
    const run = runBuildspec(buildspecText, {
      workDir: dir,
      // A command line with quoted words, as local mode gives it: `"node" "/path/ferry-package.cjs"`.
      env: { FERRY_PACKAGE: `sh ${JSON.stringify(fakePackage)} ${JSON.stringify(record)}` },
      timeoutMs: 60_000,
    });
    return { run, dir, record };
  }

  it('clones, checks out the default ref and packages the module at its path', async () => {
    const { run, dir, record } = terraformBuild({ path: 'modules/db' });
    const result = await run;

    expect(result.failure).toBeUndefined();
    expect(result.status).toBe('SUCCEEDED');
    expect(Object.keys(result.exportedVariables).sort()).toEqual([...EXPORTED_VARIABLES].sort());
    expect(result.exportedVariables).toEqual({
      ARTIFACT_DIGEST: `sha256:${'a'.repeat(64)}`,
      ARTIFACT_SIZE: '1234',
      ARTIFACT_MEDIA_TYPE: 'application/vnd.oci.image.manifest.v1+json',
      ARTIFACT_URI: `127.0.0.1:5000/ferry-local/shop/db@sha256:${'a'.repeat(64)}`,
      SOURCE_REVISION: firstCommit,
    });
    expect(readFileSync(record, 'utf8').split('\n')).toEqual([
      'terraform',
      join(dir, 'src', 'modules/db'),
      '127.0.0.1:5000/ferry-local/shop/db:build_01',
      'v1',
      '',
    ]);
  });

  it('checks out the ref the build asks for: a branch only on the remote, or a commit', async () => {
    const branch = terraformBuild({ path: 'modules/db', ref: 'main' }, 'release');
    const branchResult = await branch.run;
    expect(branchResult.failure).toBeUndefined();
    expect(branchResult.exportedVariables.SOURCE_REVISION).toBe(releaseCommit);
    expect(readFileSync(branch.record, 'utf8')).toContain('v2');

    const commit = terraformBuild({ path: 'modules/db', ref: 'release' }, firstCommit.slice(0, 12));
    const commitResult = await commit.run;
    expect(commitResult.failure).toBeUndefined();
    expect(commitResult.exportedVariables.SOURCE_REVISION).toBe(firstCommit);
    expect(readFileSync(commit.record, 'utf8')).toContain('v1');
  });

  it('fails in pre_build with a clear message when the path does not exist at the ref', async () => {
    const { run, record } = terraformBuild({ path: 'modules/cache' });
    const result = await run;

    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => phase.status)).toEqual(['SUCCEEDED', 'FAILED', 'SKIPPED', 'SKIPPED']);
    expect(result.failure?.phase).toBe('pre_build');
    expect(result.failure?.message).toContain(`path 'modules/cache' does not exist in ${repo} at main`);
    expect(existsSync(record)).toBe(false);
  });

  it('fails in pre_build with a clear message when the ref does not exist', async () => {
    const result = await terraformBuild({ path: 'modules/db' }, 'no-such-branch').run;

    expect(result.failure?.phase).toBe('pre_build');
    expect(result.failure?.message).toContain(`ref 'no-such-branch' does not exist in ${repo}`);
  });

  it('fails in post_build when the packaging tool reported no artifact', async () => {
    const spec = buildspecFor({
      buildId: 'build_02',
      componentName: 'db',
      spec: ComponentSpec.parse({
        type: 'terraform',
        source: { repo, path: 'modules/db' },
        terraformVersion: '1.9.8',
      }),
      target: { registry: '127.0.0.1:5000', repository: 'ferry-local/shop/db', tag: 'build_02' },
    });
    const result = await runBuildspec(spec, {
      workDir: workDir(),
      env: { FERRY_PACKAGE: 'sh -c \'touch "$7"\' fake-package' },
    });

    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => phase.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'SUCCEEDED',
      'FAILED',
    ]);
    expect(result.failure?.phase).toBe('post_build');
    expect(result.failure?.message).toContain(
      'the build finished without ARTIFACT_DIGEST ARTIFACT_SIZE ARTIFACT_MEDIA_TYPE ARTIFACT_URI',
    );
  });
});
