/**
 * The sync workflow's steps (stepfunctions/sync.asl.json): copy a build's artifact from the tenant
 * registry into an install's own registry before a deploy, fanning out one task per blob so no
 * task holds a big image. Every task reaches the install by assuming its role itself; the
 * workflow state carries digests and names only.
 */

import type { Build, Builds } from '../domain/builds';
import type { ControlPlane } from '../domain/control-plane';
import type { StateStore } from '../domain/state-store';
import type { RegistryClient } from '../oci/client';
import { type BlobDescriptor, copyBlob, copyManifests, planCopy } from '../oci/copy';
import { sessionNameFor } from '../shared/install-role';
import type { InstallAccess, InstallRegistry } from './access';

export const SYNC_ACTOR = 'workflow:sync';

export interface SyncInput {
  readonly installId: string;
  readonly buildId: string;
  /** Names the STS session and tags the artifact in the install's registry. */
  readonly releaseId: string;
}

export interface SyncPlan {
  readonly skip?: string;
  readonly source: { readonly repository: string; readonly digest: string };
  readonly destination: { readonly host: string; readonly repository: string; readonly tag: string };
  readonly blobs: BlobDescriptor[];
  readonly startedAt: number;
}

export interface CopiedBlob {
  readonly digest: string;
  readonly size: number;
  readonly copied: boolean;
}

export interface SyncSummary {
  readonly installId: string;
  readonly buildId: string;
  readonly releaseId: string;
  readonly source: string;
  readonly destination: string;
  readonly digest: string;
  readonly blobs: number;
  readonly blobsCopied: number;
  readonly bytesCopied: number;
  readonly durationMs: number;
}

export class SyncError extends Error {
  override readonly name = 'SyncError';
}

export interface SyncStepsOptions {
  readonly controlPlane: ControlPlane;
  readonly builds: Builds;
  readonly store: StateStore;
  /** The tenant registry, logged in with the IMS's own identity. */
  readonly tenantRegistry: () => Promise<RegistryClient>;
  readonly access: InstallAccess;
  /** Repositories in an install's registry live under `<prefix>/<app>/<component>`. */
  readonly destinationPrefix: (installId: string) => string;
  readonly now?: () => number;
}

export class SyncSteps {
  private readonly now: () => number;

  constructor(private readonly options: SyncStepsOptions) {
    this.now = options.now ?? Date.now;
  }

  async plan(input: SyncInput): Promise<SyncPlan> {
    const startedAt = this.now();
    const { build, registry } = await this.open(input);
    const destination = {
      host: registry.host,
      repository: this.destinationOf(input.installId, build),
      tag: input.releaseId,
    };
    if (build.artifact?.chart) {
      return {
        skip: `build ${build.id} is the prebuilt chart ${build.artifact.chart.name}@${build.artifact.chart.version}: deployed from its repository, never synced`,
        source: { repository: '', digest: '' },
        destination,
        blobs: [],
        startedAt,
      };
    }
    const artifact = artifactOf(build);
    await registry.ensureRepository(destination.repository);
    const plan = await planCopy(await this.options.tenantRegistry(), artifact.repository, artifact.digest);
    return { source: artifact, destination, blobs: plan.blobs, startedAt };
  }

  async copyBlob(
    input: SyncInput & { sourceRepository: string; destinationRepository: string; blob: BlobDescriptor },
  ): Promise<CopiedBlob> {
    const { registry } = await this.open(input);
    const result = await copyBlob(
      await this.options.tenantRegistry(),
      input.sourceRepository,
      registry.client,
      input.destinationRepository,
      input.blob,
    );
    return { digest: input.blob.digest, size: input.blob.size, copied: result.copied };
  }

  async finish(input: SyncInput & { plan: SyncPlan; copied: readonly CopiedBlob[] }): Promise<SyncSummary> {
    const { build, registry, install } = await this.open(input);
    const { plan } = input;
    const copied = await copyManifests(
      await this.options.tenantRegistry(),
      plan.source.repository,
      plan.source.digest,
      registry.client,
      plan.destination.repository,
      plan.destination.tag,
    );
    if (copied.digest !== plan.source.digest) {
      throw new SyncError(
        `the copy of ${plan.source.digest} arrived in ${registry.host}/${plan.destination.repository} as ${copied.digest}`,
      );
    }
    const summary: SyncSummary = {
      installId: install.id,
      buildId: build.id,
      releaseId: input.releaseId,
      source: build.artifact?.uri ?? plan.source.digest,
      destination: `${registry.host}/${plan.destination.repository}@${copied.digest}`,
      digest: copied.digest,
      blobs: plan.blobs.length,
      blobsCopied: input.copied.filter((blob) => blob.copied).length,
      bytesCopied: input.copied.filter((blob) => blob.copied).reduce((sum, blob) => sum + blob.size, 0),
      durationMs: this.now() - plan.startedAt,
    };
    await this.options.store.appendEvent({
      appId: install.appId,
      installId: install.id,
      type: 'artifact.synced',
      actor: SYNC_ACTOR,
      message: `${build.component} build ${build.id} synced to ${summary.destination} (${summary.blobsCopied}/${summary.blobs} blobs, ${summary.bytesCopied} bytes, ${summary.durationMs} ms)`,
      data: { ...summary, component: build.component, tag: plan.destination.tag },
    });
    return summary;
  }

  /** Records why a sync failed in the install's history; answers the explanation. */
  async fail(input: SyncInput & { error: { Error?: string; Cause?: string } }): Promise<{ message: string }> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const message = `sync of build ${input.buildId} into account ${install.accountId} (${install.region}) failed: ${causeOf(input.error)}`;
    await this.options.store.appendEvent({
      appId: install.appId,
      installId: install.id,
      type: 'artifact.sync-failed',
      actor: SYNC_ACTOR,
      message,
      data: {
        buildId: input.buildId,
        releaseId: input.releaseId,
        error: input.error.Error ?? 'Error',
        cause: causeOf(input.error),
      },
    });
    return { message };
  }

  private async open(input: SyncInput): Promise<{
    build: Build;
    registry: InstallRegistry;
    install: Awaited<ReturnType<ControlPlane['getInstall']>>;
  }> {
    const install = await this.options.controlPlane.getInstall(input.installId);
    const build = await this.options.builds.get(input.buildId);
    if (build.appId !== install.appId) {
      throw new SyncError(
        `build ${build.id} belongs to app ${build.appId}, install ${install.id} to app ${install.appId}`,
      );
    }
    if (build.status !== 'succeeded')
      throw new SyncError(`build ${build.id} is ${build.status}; only a succeeded build can be synced`);
    const registry = await this.options.access.openRegistry(install, sessionNameFor(input.releaseId));
    return { build, registry, install };
  }

  private destinationOf(installId: string, build: Build): string {
    return `${this.options.destinationPrefix(installId)}/${build.appName}/${build.component}`;
  }
}

function artifactOf(build: Build): { repository: string; digest: string } {
  if (!build.artifact?.repository || !build.artifact.digest) {
    throw new SyncError(`build ${build.id} recorded no artifact in the tenant registry`);
  }
  return { repository: build.artifact.repository, digest: build.artifact.digest };
}

function causeOf(error: { Error?: string; Cause?: string }): string {
  try {
    const parsed = JSON.parse(error.Cause ?? '') as { errorMessage?: string; errorType?: string };
    if (parsed.errorMessage) return `${parsed.errorType ?? error.Error}: ${parsed.errorMessage}`;
  } catch {
    // plain text
  }
  return error.Cause ? `${error.Error ?? 'Error'}: ${error.Cause}` : (error.Error ?? 'unknown error');
}
