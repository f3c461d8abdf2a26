/**
 * The OCI registry stand-in: Debian's docker-registry (CNCF distribution) serving a folder on a
 * loopback port. Several can run at once: a tenant registry and each install's registry. With
 * `auth` it asks for Basic credentials (an htpasswd file, bcrypt, written with Apache's `htpasswd`).
 */

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, waitUntilReady } from './process';

export const REGISTRY_BINARY = process.env.FERRY_REGISTRY_BINARY ?? 'docker-registry';
/** Writes the bcrypt htpasswd line the registry's Basic auth reads (Debian: apache2-utils). */
export const HTPASSWD_BINARY = process.env.FERRY_HTPASSWD_BINARY ?? 'htpasswd';

export interface LocalRegistryOptions {
  /** Keep the registry's content in this folder across restarts. @default a temporary folder, removed on stop */
  readonly dataDir?: string;
  /** @default a free port */
  readonly port?: number;
  /** Serve behind Basic auth with this one user (needs `htpasswd`, from apache2-utils). @default anonymous */
  readonly auth?: { readonly username: string; readonly password: string };
}

export interface LocalRegistry {
  /** host:port, as image references name it: `127.0.0.1:5000/ferry-acme/api`. */
  readonly host: string;
  /** http://host:port */
  readonly url: string;
  readonly dataDir: string;
  /** The user it asks for, when started with `auth`. */
  readonly credentials?: { readonly username: string; readonly password: string };
  stop(): Promise<void>;
}

export async function startRegistry(options: LocalRegistryOptions = {}): Promise<LocalRegistry> {
  const htpasswdText = options.auth && htpasswdLine(options.auth.username, options.auth.password);
  const port = options.port ?? (await freePort());
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ferry-registry-'));
  const storage = join(dataDir, 'storage');
  mkdirSync(storage, { recursive: true });
  const config = join(dataDir, 'config.yml');
  const auth: string[] = [];
  if (htpasswdText) {
    const htpasswd = join(dataDir, 'htpasswd');
    writeFileSync(htpasswd, htpasswdText, { mode: 0o600 });
    auth.push('auth:', '  htpasswd:', '    realm: ferry-local', `    path: ${htpasswd}`);
  }
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
      ...auth,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      '',
    ].join('\n'),
  );
  const server = startProcess(REGISTRY_BINARY, ['serve', config]);
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const basic = options.auth && Buffer.from(`${options.auth.username}:${options.auth.password}`);
  const headers: Record<string, string> = basic ? { authorization: `Basic ${basic.toString('base64')}` } : {};
  try {
    await waitUntilReady(
      `docker-registry on ${host}`,
      server,
      async () => (await fetch(`${url}/v2/`, { headers })).status === 200,
    );
  } catch (error) {
    await server.stop();
    if (temporary) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    host,
    url,
    dataDir,
    ...(options.auth && { credentials: { ...options.auth } }),
    async stop() {
      await server.stop();
      if (temporary) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `user:$2y$…`: the registry reads bcrypt only, which Node's crypto does not offer. */
function htpasswdLine(username: string, password: string): string {
  if (username === '' || username.includes(':')) {
    throw new Error(`registry auth: the user name "${username}" must be non-empty and without ":"`);
  }
  // -i: the password comes on stdin, never on a command line another process could read.
  const result = spawnSync(HTPASSWD_BINARY, ['-niB', username], { input: password, encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : result.stderr.trim();
    throw new Error(
      `registry auth needs ${HTPASSWD_BINARY} (Debian: apt-get install apache2-utils) to write a bcrypt ` +
        `htpasswd file: ${why}`,
    );
  }
  return `${result.stdout.trim()}\n`;
}
