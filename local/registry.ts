/**
 * The OCI registry stand-in: Debian's docker-registry (CNCF distribution) serving a folder on a
 * loopback port. Several can run at once: a tenant registry and each install's registry.
 */

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, waitUntilReady } from './process';

export const REGISTRY_BINARY = process.env.FERRY_REGISTRY_BINARY ?? 'docker-registry';

export interface LocalRegistryOptions {
  /** Keep the registry's content in this folder across restarts. @default a temporary folder, removed on stop */
  readonly dataDir?: string;
  /** @default a free port */
  readonly port?: number;
}

export interface LocalRegistry {
  /** host:port, as image references name it: `127.0.0.1:5000/ferry-acme/api`. */
  readonly host: string;
  /** http://host:port */
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

export async function startRegistry(options: LocalRegistryOptions = {}): Promise<LocalRegistry> {
  const port = options.port ?? (await freePort());
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ferry-registry-'));
  const storage = join(dataDir, 'storage');
  mkdirSync(storage, { recursive: true });
  const config = join(dataDir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storage}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      '',
    ].join('\n'),
  );
  const server = startProcess(REGISTRY_BINARY, ['serve', config]);
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  await waitUntilReady(
    `docker-registry on ${host}`,
    server,
    async () => (await fetch(`${url}/v2/`)).status === 200,
  );
  return {
    host,
    url,
    dataDir,
    async stop() {
      await server.stop();
      if (temporary) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
