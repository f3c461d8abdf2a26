/**
 * Local mode's stand-in for reaching an install's account: one local registry plays every
 * install's registry, each install in its own namespace (`installs/<installId>/…`). Nothing is
 * assumed; the boundary (InstallAccess) is the same one AWS's STS-based access implements.
 */

import { RegistryClient } from '../lambda/oci/client';
import {
  AccessDeniedError,
  type InstallAccess,
  type InstallRegistry,
  type InstallTarget,
} from '../lambda/sync/access';

export const localInstallPrefix = (installId: string) => `installs/${installId}`;

export class LocalInstallAccess implements InstallAccess {
  /** The sessions opened, for tests: which install, under which session name. */
  readonly sessions: { installId: string; sessionName: string }[] = [];

  /** Installs whose role local mode treats as denied: verify and every sync through it fail. */
  readonly denied = new Set<string>();

  constructor(private readonly registryHost: string) {}

  async verify(install: InstallTarget, sessionName: string): Promise<{ roleArn: string }> {
    return { roleArn: this.assume(install, sessionName) };
  }

  async openRegistry(install: InstallTarget, sessionName: string): Promise<InstallRegistry> {
    this.assume(install, sessionName);
    return {
      client: new RegistryClient({ registry: this.registryHost, insecure: true }),
      host: this.registryHost,
      // docker-registry creates a repository on first push.
      ensureRepository: async () => undefined,
    };
  }

  private assume(install: InstallTarget, sessionName: string): string {
    this.sessions.push({ installId: install.id, sessionName });
    const roleArn = `arn:aws:iam::${install.accountId}:role/local-install-${install.id}`;
    if (this.denied.has(install.id)) {
      throw new AccessDeniedError(`cannot assume ${roleArn} for install ${install.id}: denied (local mode)`);
    }
    return roleArn;
  }
}
