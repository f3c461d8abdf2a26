import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { parse } from 'yaml';
import type { ApplyRequest } from '../../../lambda/deploy/platform';
import { RunnerPlatform } from '../../../lambda/deploy/runner-platform';
import type { Install } from '../../../lambda/domain/control-plane';

const install = {
  id: 'inst_01jz5m3k8q2v7w9x0y1z2a3b4c',
  appId: 'app_1',
  accountId: '111122223333',
  region: 'eu-west-1',
  externalId: 'ext-secret-ish',
  inputs: {},
} as unknown as Install;

/** Values a sensitive input might render into, shell metacharacters and all. */
const tricky = `p'a"s$(touch /tmp/ferry-pwned)\`x\`\nline2 \\ end`;

function helmRequest(): ApplyRequest {
  return {
    install,
    deployId: 'rel_1',
    component: 'site',
    spec: {
      type: 'helm',
      chart: { kind: 'prebuilt', repo: 'https://charts.example.com', name: 'site', version: '1.0.0' },
      values: { password: tricky },
      valuesFiles: [],
      namespace: 'shop',
      cluster: 'main',
      dependsOn: [],
    },
    artifact: {
      uri: 'https://charts.example.com',
      chart: { repo: 'https://charts.example.com', name: 'site', version: '1.0.0' },
    },
  };
}

describe('the deploy runner platform', () => {
  const s3 = mockClient(S3Client);
  afterEach(() => s3.reset());
  const platform = () =>
    new RunnerPlatform({
      s3: new S3Client({}),
      bucket: 'runner-bucket',
      tenant: 'acme',
      defaultImage: 'runner:image',
    });

  it('keeps every value out of what the workflow and CodeBuild record: they name an object only', async () => {
    s3.on(PutObjectCommand).resolves({});
    const job = await platform().prepare(helmRequest());
    expect(job.environment).toEqual([
      { Name: 'FERRY_RUNNER_INPUT', Value: `s3://runner-bucket/${job.inputKey}`, Type: 'PLAINTEXT' },
    ]);
    expect(job.inputKey).toMatch(/^inputs\/rel_1-inst_01jz5m3k8q2v7w9x0y1z2a3b4c\/site\.json$/);
    expect(job.outputsKey).toBe(job.inputKey.replace(/^inputs\//, 'outputs/'));
    expect(job.image).toBe('runner:image');
    const recorded = JSON.stringify(job);
    expect(recorded).not.toContain('ext-secret-ish');
    expect(recorded).not.toContain('touch /tmp/ferry-pwned');

    const put = s3.commandCalls(PutObjectCommand)[0].args[0].input;
    expect(put).toMatchObject({ Bucket: 'runner-bucket', Key: job.inputKey });
    const stored = JSON.parse(String(put.Body)) as { environment: { Name: string; Value: string }[] };
    const value = (name: string) => stored.environment.find((v) => v.Name === name)?.Value;
    expect(value('FERRY_EXTERNAL_ID')).toBe('ext-secret-ish');
    expect(value('FERRY_INSTALL_ROLE_ARN')).toBe(
      'arn:aws:iam::111122223333:role/ferry.acme.inst_01jz5m3k8q2v7w9x0y1z2a3b4c',
    );
    expect(JSON.stringify(stored)).toContain('ferry-pwned');
  });

  it("loads the input into the build's shell first, every value byte for byte and inert", async () => {
    s3.on(PutObjectCommand).resolves({});
    const job = await platform().prepare(helmRequest());
    const stored = String(s3.commandCalls(PutObjectCommand)[0].args[0].input.Body);
    const first = (parse(job.buildspec) as { phases: { install: { commands: string[] } } }).phases.install
      .commands[0];

    const dir = mkdtempSync(join(tmpdir(), 'ferry-runner-input-'));
    try {
      writeFileSync(join(dir, 'input.json'), stored);
      // A stand-in `aws s3 cp SRC DEST` that copies the stored object.
      writeFileSync(join(dir, 'aws'), `#!/bin/bash\ncp "${join(dir, 'input.json')}" "$5"\n`);
      chmodSync(join(dir, 'aws'), 0o755);
      const script = `${first}\nnode -e 'process.stdout.write(JSON.stringify(process.env))'`;
      const env = JSON.parse(
        execFileSync('bash', ['-c', script], {
          env: {
            PATH: `${dir}:${process.env.PATH}`,
            FERRY_RUNNER_INPUT: `s3://runner-bucket/${job.inputKey}`,
          },
        }).toString(),
      ) as Record<string, string>;
      for (const { Name, Value } of (JSON.parse(stored) as { environment: { Name: string; Value: string }[] })
        .environment) {
        expect([Name, env[Name]]).toEqual([Name, Value]);
      }
      expect(Object.values(env).some((v) => v.includes('$(touch /tmp/ferry-pwned)'))).toBe(true);
      expect(() => execFileSync('test', ['-e', '/tmp/ferry-pwned'])).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the outputs and removes the input; a failed build only removes the input', async () => {
    s3.on(GetObjectCommand).resolves({
      Body: {
        transformToString: async () =>
          JSON.stringify({ outputs: { url: 'https://x', token: 't' }, sensitive: ['token'] }),
      },
    } as never);
    s3.on(DeleteObjectCommand).resolves({});
    const job = { inputKey: 'inputs/a/site.json', outputsKey: 'outputs/a/site.json' } as never;
    expect(await platform().finish(job)).toEqual({
      outputs: { url: 'https://x', token: 't' },
      sensitiveOutputs: ['token'],
    });
    expect(
      s3
        .commandCalls(DeleteObjectCommand)
        .map((call) => call.args[0].input.Key)
        .sort(),
    ).toEqual(['inputs/a/site.json', 'outputs/a/site.json']);
    s3.resetHistory();
    await platform().discard(job);
    expect(s3.commandCalls(DeleteObjectCommand).map((call) => call.args[0].input.Key)).toEqual([
      'inputs/a/site.json',
    ]);
  });
});
