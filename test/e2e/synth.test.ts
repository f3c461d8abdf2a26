import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../support/processes';

const run = promisify(execFile);
const CDK = join(ROOT, 'node_modules', '.bin', 'cdk');

/** `cdk synth` as a user runs it: the CLI, the app in cdk.json, bundling with local esbuild, cdk-nag. */
async function synth(args: string[]): Promise<{ code: number; stdout: string; stderr: string; out: string }> {
  const out = mkdtempSync(join(tmpdir(), 'ferry-cdk-out-'));
  try {
    const { stdout, stderr } = await run(CDK, ['synth', '-q', '-o', out, ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        CDK_DISABLE_CLI_TELEMETRY: 'true',
        CDK_DEFAULT_ACCOUNT: '',
        CDK_DEFAULT_REGION: '',
      },
    });
    return { code: 0, stdout, stderr, out };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    rmSync(out, { recursive: true, force: true });
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr, out };
  }
}

describe('cdk synth from the command line', () => {
  it('synthesizes Ferry-acme with bundled functions and no unacknowledged cdk-nag finding', async () => {
    const result = await synth(['-c', 'tenant=acme', '-c', 'region=eu-west-1']);
    try {
      expect(result.code).toBe(0);
      const template = JSON.parse(readFileSync(join(result.out, 'Ferry-acme.template.json'), 'utf8'));
      expect(Object.keys(template.Resources).length).toBeGreaterThan(20);
      const report = readFileSync(join(result.out, 'validation-report.json'), 'utf8');
      expect(report).not.toMatch(/"status":\s*"failure"/);
    } finally {
      rmSync(result.out, { recursive: true, force: true });
    }
  });

  it('refuses a bad tenant name with one clear line and no stack trace', async () => {
    const result = await synth(['-c', 'tenant=Not_Valid']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("ferry: context 'tenant': 'Not_Valid' is not a valid tenant name");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a synth without a tenant', async () => {
    const result = await synth([]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("ferry: no tenant given: synthesize with '-c tenant=NAME'");
  });
});
