import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Spawned, spawnProject } from '../support/processes';

describe('local mode (npm start)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-local-'));
  let ims: Spawned;
  let url: string;

  beforeAll(async () => {
    ims = spawnProject(['bin/local.ts'], { PORT: '0', FERRY_DATA_DIR: dataDir });
    url = (await ims.waitFor(/API\s+(http:\/\/127\.0\.0\.1:\d+)\/v1/))[1];
  });

  afterAll(async () => {
    if (ims.child.exitCode === null) {
      ims.child.kill('SIGINT');
      await ims.exited();
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the API on loopback and says what it started', async () => {
    expect(ims.output()).toContain(`data in ${dataDir}`);
    const response = await fetch(`${url}/v1/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', tenant: 'local' });
  });

  it('answers unknown routes in the API error shape', async () => {
    const response = await fetch(`${url}/v1/nothing-here`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: { code: 'NotFound', message: 'no route for GET /v1/nothing-here', details: [] },
    });
  });

  it('stops cleanly on Ctrl-C', async () => {
    ims.child.kill('SIGINT');
    expect(await ims.exited()).toBe(0);
    expect(ims.output()).toContain('stopped.');
    await expect(fetch(`${url}/v1/health`)).rejects.toThrow();
  });
});
