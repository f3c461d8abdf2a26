/**
 * A release to many simulated installs, through the real release and deploy-install definitions on
 * aws-local-stepfunctions and the real state on DynamoDB Local; only the apply is simulated (it
 * returns at once), so the figures are Ferry's own cost: state transitions and Lambda invocations
 * per install, the wall time, and how close any execution comes to Step Functions' limits (25,000
 * history events per execution, 256 KiB per state), side by side with those limits, and what the
 * same release shape costs at 10,000 installs.
 *
 *   npm run bench:release -- [--installs 1000] [--wave-size 100]
 *
 * History events are counted the way Step Functions writes them for a Standard workflow: 2 per
 * state (entered, exited), 3 more per Lambda task (scheduled, started, succeeded), 4 more per
 * service-integration task (scheduled, started, submitted, succeeded), 2 per Map iteration and 2
 * more per Map state, and 2 per execution (started, ended).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ApplyResult, Platform } from '../lambda/deploy/platform';
import { Builds } from '../lambda/domain/builds';
import { ControlPlane } from '../lambda/domain/control-plane';
import { LocalSealer } from '../lambda/domain/secrets';
import { StateStore } from '../lambda/domain/state-store';
import { RegistryClient } from '../lambda/oci/client';
import { createRelease } from '../lambda/release/requests';
import { MAX_WAVES_PER_EXECUTION } from '../lambda/release/steps';
import { documentClient } from '../lambda/shared/dynamo';
import { ensureStateTable, startDynamoDb } from '../local/dynamodb';
import { LocalInstallAccess } from '../local/install-access';
import { localReleaseRuntime } from '../local/releases';
import type { WorkflowRun } from '../local/stepfunctions';
import { loadDefinition } from '../stepfunctions/definitions';

const HISTORY_LIMIT = 25_000;
const PAYLOAD_LIMIT = 256 * 1024;

function options() {
  const { values } = parseArgs({
    options: {
      installs: { type: 'string', default: '1000' },
      'wave-size': { type: 'string', default: '100' },
    },
  });
  const installs = Number(values.installs);
  const waveSize = Number(values['wave-size']);
  for (const [name, value] of [
    ['--installs', installs],
    ['--wave-size', waveSize],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name}: give a positive integer`);
  }
  return { installs, waveSize };
}

/** The Task states that are Lambda invocations (a Lambda ARN, or lambda:invoke) in a definition. */
function lambdaTasks(name: string): Set<string> {
  const tasks = new Set<string>();
  const walk = (states: Record<string, Record<string, unknown>>) => {
    for (const [stateName, state] of Object.entries(states)) {
      const resource = String(state.Resource ?? '');
      if (state.Type === 'Task' && (resource.startsWith('${') || resource.includes(':lambda:invoke')))
        tasks.add(stateName);
      const processor = state.ItemProcessor as
        | { States: Record<string, Record<string, unknown>> }
        | undefined;
      if (processor) walk(processor.States);
    }
  };
  walk(loadDefinition(name).definition.States as Record<string, Record<string, unknown>>);
  return tasks;
}

/** History events of one execution, as Step Functions would write them. */
function historyEvents(run: WorkflowRun, lambda: Set<string>): number {
  let events = 2 + 2 * run.mapIterations;
  run.statesEntered.forEach((name, index) => {
    const type = run.stateTypesEntered[index];
    events += 2;
    if (type === 'Task') events += lambda.has(name) && !name.startsWith('RunWave') ? 3 : 4;
    if (type === 'Map') events += 2;
  });
  return events;
}

async function main() {
  const { installs: installCount, waveSize } = options();
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-release-'));
  const dynamo = await startDynamoDb();
  try {
    const table = 'bench-release';
    await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), table);
    const client = documentClient(dynamo.clientConfig);
    const store = new StateStore({ client, table });
    const controlPlane = new ControlPlane({ client, table, sealer: new LocalSealer(Buffer.alloc(32, 1)) });
    const builds = new Builds(store);

    // Two components, one depending on the other's output; prebuilt charts need no sync.
    const app = (await controlPlane.createApp({ name: 'bench', inputs: [] }, 'bench')).value;
    for (const [name, values] of [
      ['base', {}],
      ['site', { endpoint: '{{ components.base.outputs.endpoint }}' }],
    ] as const) {
      const chart = { repo: 'https://charts.example.com', name, version: '1.0.0' };
      const spec = {
        type: 'helm' as const,
        chart: { kind: 'prebuilt' as const, ...chart },
        values,
        valuesFiles: [],
        namespace: 'bench',
        dependsOn: [],
      };
      await controlPlane.putComponent(app.id, name, spec, 'bench');
      const build = (
        await builds.request(
          { appId: app.id, appName: app.name, component: name, componentVersion: 1, spec },
          'b',
        )
      ).value;
      await builds.markRunning(build.id, 'bench');
      await builds.recordSuccess(build.id, { artifact: { uri: chart.repo, chart } }, 'bench');
    }
    process.stdout.write(`creating ${installCount} installs… `);
    let created = 0;
    const worker = async () => {
      while (created < installCount) {
        const index = created++;
        await controlPlane.createInstall(
          app.id,
          { accountId: String(100000000000 + index), region: 'eu-west-1', inputs: {} },
          'bench',
        );
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    process.stdout.write('done\n');

    const simulated: Platform = {
      apply: async (request): Promise<ApplyResult> => ({
        outputs: request.component === 'base' ? { endpoint: `db.${request.install.id}.internal` } : {},
      }),
      destroy: async () => undefined,
    };
    const runtime = localReleaseRuntime({
      controlPlane,
      builds,
      store,
      tenantRegistry: new RegistryClient({ registry: '127.0.0.1:9', insecure: true }),
      installAccess: new LocalInstallAccess('127.0.0.1:9'),
      platform: simulated,
    });

    const started = process.hrtime.bigint();
    const { release } = await createRelease(
      { controlPlane, builds, releases: runtime.releases, releaseStarter: runtime.releaseRunner },
      app.id,
      {
        builds: {},
        installs: 'all',
        strategy: { waveSize, pauseSeconds: 0, maxFailurePercent: 5 },
      },
      'bench',
    );
    const recorded = Number(process.hrtime.bigint() - started) / 1e9;
    await runtime.releaseRunner.idle();
    await runtime.executions.idle();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;

    const final = await runtime.releases.get(release.id);
    const releaseRuns = [...runtime.releaseRunner.runs.values()];
    const deployRuns = [...runtime.executions.finished().values()];
    const releaseLambda = lambdaTasks('release');
    const deployLambda = lambdaTasks('deploy-install');
    const sum = (runs: WorkflowRun[], f: (run: WorkflowRun) => number) => runs.reduce((t, r) => t + f(r), 0);
    const transitions = (runs: WorkflowRun[]) => sum(runs, (run) => run.statesEntered.length);
    const invocations = (runs: WorkflowRun[], lambda: Set<string>) =>
      sum(runs, (run) => run.statesEntered.filter((name) => lambda.has(name)).length);
    const largestHistory = Math.max(
      ...releaseRuns.map((run) => historyEvents(run, releaseLambda)),
      ...deployRuns.map((run) => historyEvents(run, deployLambda)),
    );
    const largestState = Math.max(...[...releaseRuns, ...deployRuns].map((run) => run.largestStateBytes));
    const releaseEvents = sum(releaseRuns, (run) => historyEvents(run, releaseLambda));
    const perWave = (releaseEvents - 2 * releaseRuns.length) / Math.max(1, final.wavesRun);
    const worstAt10k = Math.ceil(2 + perWave * MAX_WAVES_PER_EXECUTION);

    const n = installCount;
    const fixed = (value: number, digits = 2) => value.toFixed(digits);
    const rows: [string, string, string][] = [
      ['installs, waves', `${n}, ${final.wavesRun} of ${final.waveCount}`, ''],
      ['release status', `${final.status} (${final.counts.succeeded} succeeded)`, ''],
      ['wall time', `${fixed(seconds)} s (${fixed((seconds * 1000) / n)} ms per install)`, ''],
      ['  of which recording the release', `${fixed(recorded)} s`, 'API Gateway: 29 s'],
      [
        'state transitions per install',
        `${fixed((transitions(deployRuns) + transitions(releaseRuns)) / n)}`,
        `deploy ${fixed(transitions(deployRuns) / n)} + release ${fixed(transitions(releaseRuns) / n)}`,
      ],
      [
        'Lambda invocations per install',
        `${fixed((invocations(deployRuns, deployLambda) + invocations(releaseRuns, releaseLambda)) / n)}`,
        `deploy ${fixed(invocations(deployRuns, deployLambda) / n)} + release ${fixed(invocations(releaseRuns, releaseLambda) / n)}`,
      ],
      ['executions', `${releaseRuns.length} release + ${deployRuns.length} deploy-install`, ''],
      ['largest execution history', `${largestHistory} events`, `limit ${HISTORY_LIMIT}`],
      ['largest state (input/output)', `${largestState} bytes`, `limit ${PAYLOAD_LIMIT}`],
      [
        'release history per wave',
        `${fixed(perWave, 1)} events`,
        `x ${MAX_WAVES_PER_EXECUTION} waves per execution = ${worstAt10k} (limit ${HISTORY_LIMIT})`,
      ],
      [
        'at 10,000 installs, wave size 1',
        `${Math.ceil(10_000 / MAX_WAVES_PER_EXECUTION)} release executions`,
        `each <= ${worstAt10k} events; state size does not grow with installs`,
      ],
    ];
    const width = Math.max(...rows.map(([label]) => label.length));
    const middle = Math.max(...rows.map(([, value]) => value.length));
    process.stdout.write(`\n${'Ferry release'.padStart(width + 2 + 13)}   Step Functions / notes\n`);
    for (const [label, value, note] of rows) {
      process.stdout.write(`${label.padEnd(width)}  ${value.padEnd(middle)}   ${note}\n`);
    }
    if (final.status !== 'succeeded') throw new Error(`the release did not succeed: ${final.reason}`);
    if (largestHistory > HISTORY_LIMIT || largestState > PAYLOAD_LIMIT || worstAt10k > HISTORY_LIMIT) {
      throw new Error('an execution would pass a Step Functions limit');
    }
  } finally {
    await dynamo.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench:release: ${error.message}\n`);
  process.exit(1);
});
