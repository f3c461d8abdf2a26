#!/usr/bin/env node
/** `npm start`: runs the IMS locally on http://127.0.0.1:7070 (PORT to change), data under FERRY_DATA_DIR. */
import { resolve } from 'node:path';
import { startLocalIms } from '../local/ims';

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 7070);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number (0-65535), got '${process.env.PORT}'`);
  }
  const dataDir = resolve(process.env.FERRY_DATA_DIR ?? '.ferry');
  process.env.POWERTOOLS_SERVICE_NAME ??= 'ferry-local';
  const ims = await startLocalIms({
    dataDir,
    port,
    tenant: process.env.FERRY_TENANT ?? 'local',
    onBuildFinished: (buildId, status, cause) =>
      process.stdout.write(
        `build ${buildId} ${status === 'SUCCEEDED' ? 'succeeded' : `failed: ${cause ?? ''}`}\n`,
      ),
    onReleaseFinished: (releaseId, run) =>
      process.stdout.write(
        `release ${releaseId} ${run.status === 'SUCCEEDED' ? 'succeeded' : `ended: ${run.cause ?? run.error ?? ''}`}\n`,
      ),
    onTeardownFinished: (installId, run) =>
      process.stdout.write(
        `teardown of install ${installId} ${run.status === 'SUCCEEDED' ? 'succeeded' : `ended: ${run.cause ?? run.error ?? ''}`}\n`,
      ),
  });
  process.stdout.write(
    [
      'Ferry IMS running locally',
      `  API        ${ims.url}/v1   (try: curl ${ims.url}/v1/health)`,
      `  state      DynamoDB Local at ${ims.dynamoDbEndpoint}, data in ${ims.dataDir}`,
      `  registry   docker-registry at ${ims.registryHost} (builds push to ${ims.registryHost}/ferry-<tenant>/<app>/<component>)`,
      'Ctrl-C stops it.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: stopping Ferry… `);
    await ims.stop();
    process.stdout.write('stopped.\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: Error) => {
  process.stderr.write(`ferry: ${error.message}\n`);
  process.exit(1);
});
