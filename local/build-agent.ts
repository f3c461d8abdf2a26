/**
 * The local build agent: runs a buildspec the way CodeBuild runs it, so local mode and the tests run
 * the very text a tenant's CodeBuild project runs.
 *
 * - Phases run in order: install, pre_build, build, post_build. A failing install or pre_build skips
 *   the rest; a failing build still runs post_build, with `CODEBUILD_BUILD_SUCCEEDING=0`.
 * - Each command is its own bash script (like CodeBuild's): it starts in the working directory and
 *   with the environment the previous command left, and a command that exits non-zero fails its
 *   phase. Shell options and unexported variables do not carry over; exported ones and `cd` do.
 *   Background processes a command leaves behind are stopped when it ends.
 * - The environment: this process's, then the buildspec's `env.variables`, then `options.env`
 *   (StartBuild's overrides win, as in CodeBuild).
 * - Everything the build prints goes to `<workDir>/../build.log`, and line by line to `onLog`.
 * - On timeout the running command's process group is killed and the build fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Buildspec } from '../lambda/build/buildspec';

export interface LocalBuildOptions {
  /** Where commands start: the build's source directory; created if missing. */
  readonly workDir: string;
  /** Overrides for the build's environment (StartBuild environmentVariablesOverride). */
  readonly env?: Record<string, string>;
  /** The longest the whole build may run. @default 60 minutes, as CodeBuild */
  readonly timeoutMs?: number;
  /** Told every line the build logs. */
  readonly onLog?: (line: string) => void;
}

export type PhaseName = 'install' | 'pre_build' | 'build' | 'post_build';

export interface PhaseResult {
  readonly name: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'SKIPPED';
  readonly durationMs: number;
}

export interface LocalBuildResult {
  readonly status: 'SUCCEEDED' | 'FAILED';
  /** The buildspec's `exported-variables` that were set when the build ended. */
  readonly exportedVariables: Record<string, string>;
  /** Every phase, in order; a phase the buildspec leaves out succeeds with no commands. */
  readonly phases: PhaseResult[];
  readonly logFile: string;
  /** The first failure: which phase, the failing command and the tail of its output. */
  readonly failure?: { phase: string; message: string };
}

export const PHASES: readonly PhaseName[] = ['install', 'pre_build', 'build', 'post_build'];
const DEFAULT_TIMEOUT_MS = 60 * 60_000;
/** How many lines of a failing command's output its failure message quotes. */
const TAIL_LINES = 20;
const TAIL_CHARS = 2000;
const COMMAND_CHARS = 200;
/** Variables bash maintains itself; carrying them over would only confuse the next command. */
const SHELL_MAINTAINED = new Set(['_', 'SHLVL', 'PWD', 'OLDPWD']);
/** Kept in the parent directory so nothing the build writes lands in its sources. */
const STATE_PREFIX = '.build-agent-';

/**
 * Wraps one command: when the script exits, for whatever reason, it saves the environment and the
 * working directory the command left for the next one. The wrapper's own names are unexported.
 */
function wrap(command: string): string {
  return [
    '__ferry_agent_env=$1 __ferry_agent_cwd=$2',
    'shift 2',
    '__ferry_agent_save() { env -0 >"$__ferry_agent_env"; printf %s "$PWD" >"$__ferry_agent_cwd"; }',
    'trap __ferry_agent_save EXIT',
    command,
  ].join('\n');
}

interface CommandOutcome {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly spawnError?: Error;
  readonly tail: readonly string[];
}

interface CommandContext {
  readonly env: Record<string, string>;
  readonly cwd: string;
  /** Where the command saves the environment and working directory it leaves. */
  readonly envFile: string;
  readonly cwdFile: string;
  readonly deadline: number;
  readonly log: (line: string) => void;
}

/** Stops a command's process group; quietly if it has already gone. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has exited
  }
}

function runCommand(command: string, context: CommandContext): Promise<CommandOutcome> {
  const tail: string[] = [];
  const emit = (line: string) => {
    context.log(line);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  };
  return new Promise((resolvePromise) => {
    const remaining = context.deadline - Date.now();
    if (remaining <= 0) {
      resolvePromise({ exitCode: null, signal: null, timedOut: true, tail });
      return;
    }
    if (!existsSync(context.cwd)) {
      const spawnError = new Error(`its working directory ${context.cwd} no longer exists`);
      resolvePromise({ exitCode: null, signal: null, timedOut: false, tail, spawnError });
      return;
    }
    const child = spawn('bash', ['-c', wrap(command), 'bash', context.envFile, context.cwdFile], {
      cwd: context.cwd,
      env: context.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let timedOut = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, remaining);
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    const reader = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const lines = (pending[stream] + chunk.toString('utf8')).split('\n');
      pending[stream] = lines.pop() ?? '';
      for (const line of lines) emit(line);
    };
    child.stdout?.on('data', reader('stdout'));
    child.stderr?.on('data', reader('stderr'));
    let finished = false;
    const finish = (spawnError?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      for (const stream of ['stdout', 'stderr'] as const) {
        if (pending[stream] !== '') emit(pending[stream]);
        pending[stream] = '';
      }
      resolvePromise({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        timedOut,
        tail,
        ...(spawnError && { spawnError }),
      });
    };
    child.once('error', (error) => finish(error));
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // Whatever the command left running would hold its output open: stop it with the command.
      killGroup(child, 'SIGKILL');
    });
    child.once('close', () => finish());
  });
}

/** Reads the environment a command saved (`env -0`), without the variables bash maintains. */
function readSavedEnvironment(file: string): Record<string, string> | undefined {
  if (!existsSync(file)) return undefined;
  const env: Record<string, string> = {};
  for (const entry of readFileSync(file, 'utf8').split('\0')) {
    const equals = entry.indexOf('=');
    if (equals <= 0) continue;
    const name = entry.slice(0, equals);
    if (!SHELL_MAINTAINED.has(name)) env[name] = entry.slice(equals + 1);
  }
  return env;
}

/** A command as the log shows it: without the `set -euo pipefail` every generated command starts with. */
function describeCommand(command: string): string {
  return command.replace(/^set -euo pipefail\n/, '').trim();
}

/** A command as a failure message names it: its first line, shortened. */
function summarizeCommand(command: string): string {
  const [first = '', ...rest] = describeCommand(command).split('\n');
  const line = first.length > COMMAND_CHARS ? `${first.slice(0, COMMAND_CHARS)}…` : first;
  return rest.length > 0 ? `${line} …` : line;
}

function describeTail(tail: readonly string[]): string {
  const text = tail.join('\n').trim();
  if (text === '') return 'it printed nothing';
  return `its last output:\n${text.length > TAIL_CHARS ? `…${text.slice(-TAIL_CHARS)}` : text}`;
}

function failureMessage(label: string, command: string, outcome: CommandOutcome, timeoutMs: number): string {
  if (outcome.timedOut) {
    return (
      `${label} timed out: the build ran longer than its timeout of ${timeoutMs} ms, ` +
      `so the running command was stopped: \`${summarizeCommand(command)}\``
    );
  }
  const reason = outcome.spawnError
    ? `it could not start: ${outcome.spawnError.message}`
    : outcome.signal
      ? `it was killed by ${outcome.signal}`
      : `exit status ${outcome.exitCode}`;
  return (
    `${label} failed: command \`${summarizeCommand(command)}\` failed (${reason}); ` +
    describeTail(outcome.tail)
  );
}

function timestamp(): string {
  return new Date().toISOString();
}

/** Runs `buildspec` in `options.workDir` as CodeBuild would; resolves when the build has ended. */
export async function runBuildspec(
  buildspec: Buildspec,
  options: LocalBuildOptions,
): Promise<LocalBuildResult> {
  const workDir = resolve(options.workDir);
  mkdirSync(workDir, { recursive: true });
  const logFile = join(dirname(workDir), 'build.log');
  const log = openSync(logFile, 'w', 0o600);
  const stateDir = mkdtempSync(join(dirname(workDir), STATE_PREFIX));
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const writeLog = (line: string) => {
    writeSync(log, `${line}\n`);
    options.onLog?.(line);
  };
  const agentLog = (line: string) => writeLog(`[Container] ${timestamp()} ${line}`);

  let env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  Object.assign(env, { CODEBUILD_SRC_DIR: workDir, ...buildspec.env?.variables, ...options.env });
  let cwd = workDir;
  const phases: PhaseResult[] = [];
  let failure: { phase: string; message: string } | undefined;
  let skipRest = false;

  try {
    for (const name of PHASES) {
      const label = name.toUpperCase();
      if (skipRest) {
        agentLog(`Phase ${label} skipped`);
        phases.push({ name, status: 'SKIPPED', durationMs: 0 });
        continue;
      }
      env = { ...env, CODEBUILD_BUILD_SUCCEEDING: failure === undefined ? '1' : '0' };
      const started = Date.now();
      agentLog(`Entering phase ${label}`);
      let failed = false;
      for (const command of buildspec.phases[name]?.commands ?? []) {
        agentLog(`Running command ${describeCommand(command)}`);
        const envFile = join(stateDir, 'env');
        const cwdFile = join(stateDir, 'cwd');
        rmSync(envFile, { force: true });
        rmSync(cwdFile, { force: true });
        const outcome = await runCommand(command, { env, cwd, envFile, cwdFile, deadline, log: writeLog });
        env = readSavedEnvironment(envFile) ?? env;
        if (existsSync(cwdFile)) cwd = readFileSync(cwdFile, 'utf8') || cwd;
        if (outcome.exitCode === 0 && !outcome.timedOut) continue;

        failed = true;
        if (outcome.timedOut) skipRest = true;
        const message = failureMessage(label, command, outcome, timeoutMs);
        agentLog(message);
        failure ??= { phase: name, message };
        break;
      }
      const status = failed ? 'FAILED' : 'SUCCEEDED';
      agentLog(`Phase complete: ${label} State: ${status}`);
      phases.push({ name, status, durationMs: Date.now() - started });
      if (failed && (name === 'install' || name === 'pre_build')) skipRest = true;
    }
    agentLog(`Build ${failure === undefined ? 'SUCCEEDED' : 'FAILED'}`);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
    closeSync(log);
  }

  const exportedVariables: Record<string, string> = {};
  for (const name of buildspec.env?.['exported-variables'] ?? []) {
    const value = env[name];
    if (value !== undefined) exportedVariables[name] = value;
  }
  const status = failure === undefined ? 'SUCCEEDED' : 'FAILED';
  return { status, exportedVariables, phases, logFile, ...(failure && { failure }) };
}
