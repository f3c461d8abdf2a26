/**
 * Helm, Terraform and plugin components in AWS: each apply is a build of the deploy runner
 * (lib/deploy-runner.ts) that the deploy-install workflow starts with `codebuild:startBuild.sync`.
 *
 * What the build needs (the rendered values, the install's ExternalId, every spec value) is written
 * to an object in the runner's bucket, encrypted with the tenant key; the workflow and the build
 * record carry only that object's name. The build's first command reads it back into its shell.
 * So nothing a sensitive input was rendered into ever sits in execution history or in CodeBuild's
 * build record.
 */
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { installRoleArn, stateBucketName } from '../shared/install-role';
import type { ApplyRequest, ApplyResult } from './platform';
import { outputsKeyFor, type RunnerAction, readRunnerOutputs, runnerBuild } from './runner';

/** What the workflow starts the runner with: names only, no values. */
export interface RunnerJob {
  readonly buildspec: string;
  /** Only FERRY_RUNNER_INPUT: where the build reads everything else from. */
  readonly environment: { Name: string; Value: string; Type: 'PLAINTEXT' }[];
  readonly image: string;
  readonly inputKey: string;
  readonly outputsKey: string;
}

export interface RunnerPlatformOptions {
  readonly s3: S3Client;
  /** The runner's bucket (DeployRunner.outputsBucket): `inputs/` and `outputs/`. */
  readonly bucket: string;
  readonly tenant: string;
  /** The runner project's own image, for everything but a plugin. */
  readonly defaultImage: string;
  /** @default 'aws' */
  readonly partition?: string;
}

/**
 * Reads the input object into the build's shell as exported variables, each value single-quoted
 * (a `'` inside written as `'\''`), names checked, then removes the local copy. Runs with the
 * runner's own credentials, before anything assumes the install's role.
 */
const LOAD_INPUT = [
  'set -euo pipefail',
  'ferry_input="$(mktemp)"',
  'aws s3 cp --only-show-errors "$FERRY_RUNNER_INPUT" "$ferry_input"',
  `eval "$(node -e '${[
    'const q = String.fromCharCode(39);',
    'const input = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));',
    'for (const { Name, Value } of input.environment) {',
    '  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(Name)) throw new Error("not a variable name: " + Name);',
    '  process.stdout.write("export " + Name + "=" + q + String(Value).split(q).join(q + "\\\\" + q + q) + q + "\\n");',
    '}',
  ].join(' ')}' "$ferry_input")"`,
  'rm -f "$ferry_input"',
].join('\n');

export class RunnerPlatform {
  constructor(private readonly options: RunnerPlatformOptions) {}

  /** Writes the build's input and answers the job the workflow starts. */
  async prepare(request: ApplyRequest, action: RunnerAction = 'apply'): Promise<RunnerJob> {
    const { install } = request;
    const outputsKey = outputsKeyFor(`${request.deployId}/${install.id}`, request.component, action);
    const inputKey = outputsKey.replace(/^outputs\//, 'inputs/');
    const build = runnerBuild(request, {
      tenant: this.options.tenant,
      outputsBucket: this.options.bucket,
      outputsKey,
      externalId: install.externalId,
      roleArn: installRoleArn(install.accountId, this.options.tenant, install.id, this.options.partition),
      action,
      ...(request.spec.type === 'terraform' && {
        stateBucket: stateBucketName(this.options.tenant, install.id),
      }),
    });
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: inputKey,
        Body: JSON.stringify({ environment: build.environment }),
        ContentType: 'application/json',
      }),
    );
    const buildspec = parse(build.buildspec) as { phases: { install: { commands: string[] } } };
    buildspec.phases.install.commands.unshift(LOAD_INPUT);
    return {
      buildspec: stringify(buildspec, { version: '1.1', lineWidth: 0 }),
      environment: [
        { Name: 'FERRY_RUNNER_INPUT', Value: `s3://${this.options.bucket}/${inputKey}`, Type: 'PLAINTEXT' },
      ],
      image: build.image ?? this.options.defaultImage,
      inputKey,
      outputsKey,
    };
  }

  /** After a build that succeeded: its outputs; the input object is removed either way. */
  async finish(job: RunnerJob): Promise<ApplyResult> {
    try {
      return await readRunnerOutputs(this.options.s3, this.options.bucket, job.outputsKey);
    } finally {
      await this.discard(job);
    }
  }

  /** Removes the job's input object (its build failed, or it was read). */
  async discard(job: Pick<RunnerJob, 'inputKey'>): Promise<void> {
    await this.options.s3.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: job.inputKey }));
  }
}
