/**
 * What the releases API does before a release exists: check everything a request names (builds,
 * components, installs, strategy), pin one build per component, record the release with its
 * installs, and start its workflow. A bad request is refused with every problem and writes nothing.
 */
import type { Builds } from '../domain/builds';
import type { Component, ControlPlane } from '../domain/control-plane';
import { ConflictError, NotFoundError, type Problem, ValidationError } from '../domain/errors';
import { FINISHED_RELEASE_STATUSES, type Release, type Releases } from '../domain/releases';
import type { CreateReleaseRequest } from '../domain/schemas';
import type { Idempotency } from '../domain/state-store';
import type { ReleaseStarter } from './aws';
import { validateStrategy } from './waves';

export interface ReleaseRequestContext {
  readonly controlPlane: ControlPlane;
  readonly builds: Builds;
  readonly releases: Releases;
  readonly releaseStarter: ReleaseStarter;
}

/** Problems listed at most, so a request naming 10,000 wrong installs still gets a readable answer. */
const MAX_PROBLEMS = 20;
/** Installs looked up at once while checking a request. */
const LOOKUP_CONCURRENCY = 16;

export async function createRelease(
  context: ReleaseRequestContext,
  appId: string,
  request: CreateReleaseRequest,
  actor: string,
  idempotency?: Idempotency,
): Promise<{ release: Release; created: boolean }> {
  const { controlPlane } = context;
  const problems: Problem[] = [];
  const { strategy, problems: strategyProblems } = validateStrategy(request.strategy);
  problems.push(...strategyProblems.map((problem) => ({ ...problem, path: `body.${problem.path}` })));

  await controlPlane.getApp(appId);
  const components = await controlPlane.allComponents(appId);
  if (components.length === 0) {
    problems.push({ path: 'path.appId', message: 'the app has no components to release' });
  }
  const builds = await pinBuilds(context, appId, components, request, problems);
  const installIds =
    request.installs === 'all'
      ? await allInstallIds(controlPlane, appId)
      : await checkInstalls(controlPlane, appId, request.installs, problems);
  if (request.installs === 'all' && installIds.length === 0) {
    problems.push({ path: 'body.installs', message: 'the app has no installs' });
  }
  if (problems.length > 0 || !strategy) {
    throw new ValidationError(
      'the release request is not valid; nothing was recorded',
      problems.slice(0, MAX_PROBLEMS),
    );
  }
  return start(context, { appId, builds, strategy, installIds }, actor, idempotency);
}

/**
 * A new release of the same builds, with the same strategy, to the installs that failed in a
 * finished release.
 */
export async function retryRelease(
  context: ReleaseRequestContext,
  releaseId: string,
  actor: string,
  idempotency?: Idempotency,
): Promise<{ release: Release; created: boolean }> {
  const original = await context.releases.get(releaseId);
  if (!FINISHED_RELEASE_STATUSES.includes(original.status)) {
    throw new ConflictError('ReleaseRunning', `release ${releaseId} is still ${original.status}`, [
      { path: 'path.releaseId', message: 'retry a release once it has ended' },
    ]);
  }
  const failed = (await context.releases.allInstalls(releaseId))
    .filter((install) => install.status === 'failed')
    .map((install) => install.installId);
  if (failed.length === 0) {
    throw new ConflictError('NothingToRetry', `release ${releaseId} has no failed installs`, [
      { path: 'path.releaseId', message: 'no install failed in this release' },
    ]);
  }
  return start(
    context,
    {
      appId: original.appId,
      builds: original.builds,
      strategy: original.strategy,
      installIds: failed,
      retryOf: releaseId,
    },
    actor,
    idempotency,
  );
}

async function start(
  context: ReleaseRequestContext,
  input: Parameters<Releases['create']>[0],
  actor: string,
  idempotency?: Idempotency,
): Promise<{ release: Release; created: boolean }> {
  const { value, created } = await context.releases.create(input, actor, idempotency);
  if (!created || value.status !== 'running' || value.currentWave > 0) return { release: value, created };
  try {
    await context.releaseStarter.start(value.id);
  } catch (error) {
    const failed = await context.releases.fail(
      value.id,
      `the release workflow did not start: ${(error as Error).message}`,
      actor,
    );
    return { release: failed, created };
  }
  return { release: value, created };
}

/** One build per component: named ones checked, the others their latest successful build. */
async function pinBuilds(
  context: ReleaseRequestContext,
  appId: string,
  components: readonly Component[],
  request: CreateReleaseRequest,
  problems: Problem[],
): Promise<Record<string, string>> {
  const names = new Set(components.map((component) => component.name));
  const pinned: Record<string, string> = {};
  for (const [name, buildId] of Object.entries(request.builds)) {
    const path = `body.builds.${name}`;
    if (!names.has(name)) {
      problems.push({ path, message: `the app has no component ${name}` });
      continue;
    }
    try {
      const build = await context.builds.get(buildId);
      if (build.appId !== appId || build.component !== name) {
        problems.push({
          path,
          message: `build ${buildId} is a build of ${build.component}, not of ${name} in this app`,
        });
      } else if (build.status !== 'succeeded') {
        problems.push({
          path,
          message: `build ${buildId} is ${build.status}; only a succeeded build deploys`,
        });
      } else {
        pinned[name] = buildId;
      }
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      problems.push({ path, message: `build ${buildId} does not exist` });
    }
  }
  (request.components ?? []).forEach((name, index) => {
    if (!names.has(name))
      problems.push({ path: `body.components[${index}]`, message: `the app has no component ${name}` });
  });
  for (const component of components) {
    if (component.name in request.builds) continue;
    const latest = await context.builds.latestSucceeded(appId, component.name);
    if (latest) {
      pinned[component.name] = latest;
      continue;
    }
    const index = request.components?.indexOf(component.name) ?? -1;
    problems.push({
      path: index >= 0 ? `body.components[${index}]` : 'body.builds',
      message: `component ${component.name} has no successful build; build it first or name a build for it in builds`,
    });
  }
  return pinned;
}

async function checkInstalls(
  controlPlane: ControlPlane,
  appId: string,
  installIds: readonly string[],
  problems: Problem[],
): Promise<string[]> {
  let next = 0;
  const found: Problem[] = [];
  const worker = async () => {
    while (next < installIds.length && found.length < MAX_PROBLEMS) {
      const index = next++;
      const path = `body.installs[${index}]`;
      try {
        const install = await controlPlane.getInstall(installIds[index]);
        if (install.appId !== appId)
          found.push({ path, message: `install ${install.id} is an install of another app` });
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        found.push({ path, message: `install ${installIds[index]} does not exist` });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, installIds.length) }, worker));
  problems.push(...found.sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true })));
  return [...installIds];
}

async function allInstallIds(controlPlane: ControlPlane, appId: string): Promise<string[]> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await controlPlane.listInstalls(appId, { limit: 100, nextToken });
    ids.push(...page.items.map((install) => install.id));
    nextToken = page.nextToken;
  } while (nextToken);
  return ids;
}
