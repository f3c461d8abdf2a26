/**
 * The IMS API: every route with what it takes and answers. The router serves this table and the
 * OpenAPI document is generated from it, so the document describes exactly what is served.
 */
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import type { BuildStarter } from '../build/starter';
import type { TeardownStarter } from '../deploy/teardown-starter';
import type { Builds } from '../domain/builds';
import type { ControlPlane } from '../domain/control-plane';
import type { Deployments } from '../domain/deployments';
import type { Releases } from '../domain/releases';
import {
  ComponentSpec,
  CreateAppRequest,
  CreateInstallRequest,
  CreateReleaseRequest,
  RequestBuildRequest,
  ResourceName,
  UpdateAppRequest,
} from '../domain/schemas';
import { accessTemplateFor } from '../installs/access-template';
import type { ReleaseStarter } from '../release/aws';
import { createRelease, retryRelease } from '../release/requests';
import { sessionNameFor } from '../shared/install-role';
import { AccessDeniedError, type InstallAccess } from '../sync/access';
import {
  type Handled,
  idempotencyOf,
  ifMatchOf,
  ifNoneMatchStar,
  pageRequestOf,
  parseBody,
  parseParam,
} from './request';
import {
  AccessTemplateResponse,
  AppResponse,
  BuildResponse,
  ComponentResponse,
  DeployedComponentsResponse,
  EventResponse,
  HealthResponse,
  InstallResponse,
  pageOf,
  ReleaseDetailResponse,
  ReleaseResponse,
  TeardownResponse,
} from './responses';

/** What every route may use; the Lambda handler and local mode each build one. */
export interface RouteContext {
  readonly controlPlane: ControlPlane;
  readonly builds: Builds;
  readonly buildStarter: BuildStarter;
  /** Reaches installs' accounts through their roles. */
  readonly installAccess: InstallAccess;
  readonly deployments: Deployments;
  readonly releases: Releases;
  readonly releaseStarter: ReleaseStarter;
  readonly teardownStarter: TeardownStarter;
  /** The customer-side template (synthesized from lib/install-access-stack.ts) and the roles it trusts. */
  readonly accessTemplate: {
    readonly template: Record<string, unknown>;
    readonly trustedRoleArns: readonly string[];
  };
  readonly tenant: string;
}

export interface RouteRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly caller: string;
}

export interface RouteDefinition {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly tag: string;
  readonly body?: z.ZodType;
  /** The body may be left out (as `{}`). */
  readonly optionalBody?: boolean;
  readonly response?: z.ZodType;
  /** The status of success. */
  readonly status: number;
  /** Headers it reads, for the document. */
  readonly headers?: readonly ('Idempotency-Key' | 'If-Match' | 'If-None-Match')[];
  readonly paged?: boolean;
  /** Error statuses it may answer besides 400. */
  readonly errors: readonly number[];
  readonly handle: (request: RouteRequest, context: RouteContext) => Promise<Handled>;
}

const AppId = 'appId';
const InstallId = 'installId';
const ComponentName = 'name';
const BuildId = 'buildId';
const ReleaseId = 'releaseId';

export const ROUTES: readonly RouteDefinition[] = [
  {
    method: 'GET',
    path: '/v1/health',
    operationId: 'getHealth',
    summary: 'Whether the IMS answers, and for which tenant',
    tag: 'meta',
    response: HealthResponse,
    status: 200,
    errors: [],
    handle: async (_request, context) => ({ body: { status: 'ok', tenant: context.tenant } }),
  },
  {
    method: 'POST',
    path: '/v1/apps',
    operationId: 'createApp',
    summary: 'Create an app with the inputs its installs give',
    tag: 'apps',
    body: CreateAppRequest,
    response: AppResponse,
    status: 201,
    headers: ['Idempotency-Key'],
    errors: [409, 422],
    handle: async (request, { controlPlane }) => {
      const body = parseBody(CreateAppRequest, request.body);
      const { value, created } = await controlPlane.createApp(
        body,
        request.caller,
        idempotencyOf(request, 'createApp'),
      );
      return {
        status: created ? 201 : 200,
        body: value,
        version: value.version,
        location: `/v1/apps/${value.id}`,
      };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps',
    operationId: 'listApps',
    summary: 'List apps by name',
    tag: 'apps',
    response: pageOf(AppResponse, 'AppPage'),
    status: 200,
    paged: true,
    errors: [],
    handle: async (request, { controlPlane }) => ({
      body: await controlPlane.listApps(pageRequestOf(request)),
    }),
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}',
    operationId: 'getApp',
    summary: 'Read an app',
    tag: 'apps',
    response: AppResponse,
    status: 200,
    errors: [404],
    handle: async (request, { controlPlane }) => {
      const app = await controlPlane.getApp(request.params[AppId]);
      return { body: app, version: app.version };
    },
  },
  {
    method: 'PATCH',
    path: '/v1/apps/{appId}',
    operationId: 'updateApp',
    summary: "Change an app's description or inputs",
    tag: 'apps',
    body: UpdateAppRequest,
    response: AppResponse,
    status: 200,
    headers: ['If-Match'],
    errors: [404, 409, 412],
    handle: async (request, { controlPlane }) => {
      const body = parseBody(UpdateAppRequest, request.body);
      const app = await controlPlane.updateApp(
        request.params[AppId],
        body,
        request.caller,
        ifMatchOf(request),
      );
      return { body: app, version: app.version };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/apps/{appId}',
    operationId: 'deleteApp',
    summary: 'Delete an app and its components; refused while it has installs',
    tag: 'apps',
    status: 204,
    headers: ['If-Match'],
    errors: [404, 409, 412],
    handle: async (request, { controlPlane }) => {
      await controlPlane.deleteApp(request.params[AppId], request.caller, ifMatchOf(request));
      return { status: 204 };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/components',
    operationId: 'listComponents',
    summary: "List an app's components by name",
    tag: 'components',
    response: pageOf(ComponentResponse, 'ComponentPage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane }) => ({
      body: await controlPlane.listComponents(request.params[AppId], pageRequestOf(request)),
    }),
  },
  {
    method: 'PUT',
    path: '/v1/apps/{appId}/components/{name}',
    operationId: 'putComponent',
    summary: 'Create or replace a component (If-Match: only that version; If-None-Match: * only create)',
    tag: 'components',
    body: ComponentSpec,
    response: ComponentResponse,
    status: 200,
    headers: ['If-Match', 'If-None-Match'],
    errors: [404, 409, 412],
    handle: async (request, { controlPlane }) => {
      const name = parseParam(ResourceName, request.params[ComponentName], 'path.name');
      const spec = parseBody(ComponentSpec, request.body);
      const { value, created } = await controlPlane.putComponent(
        request.params[AppId],
        name,
        spec,
        request.caller,
        {
          ifMatch: ifMatchOf(request),
          createOnly: ifNoneMatchStar(request),
        },
      );
      return {
        status: created ? 201 : 200,
        body: value,
        version: value.version,
        location: `/v1/apps/${value.appId}/components/${value.name}`,
      };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/components/{name}',
    operationId: 'getComponent',
    summary: 'Read a component',
    tag: 'components',
    response: ComponentResponse,
    status: 200,
    errors: [404],
    handle: async (request, { controlPlane }) => {
      const component = await controlPlane.getComponent(request.params[AppId], request.params[ComponentName]);
      return { body: component, version: component.version };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/apps/{appId}/components/{name}',
    operationId: 'deleteComponent',
    summary: 'Delete a component no other component depends on',
    tag: 'components',
    status: 204,
    headers: ['If-Match'],
    errors: [404, 409, 412],
    handle: async (request, { controlPlane }) => {
      await controlPlane.deleteComponent(
        request.params[AppId],
        request.params[ComponentName],
        request.caller,
        ifMatchOf(request),
      );
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/v1/apps/{appId}/components/{name}/builds',
    operationId: 'startBuild',
    summary: 'Build the component (at ref, if given) into an artifact in the tenant registry',
    tag: 'builds',
    body: RequestBuildRequest,
    optionalBody: true,
    response: BuildResponse,
    status: 202,
    headers: ['Idempotency-Key'],
    errors: [404, 422],
    handle: async (request, { controlPlane, builds, buildStarter }) => {
      const { appId, name } = { appId: request.params[AppId], name: request.params[ComponentName] };
      const body = parseBody(RequestBuildRequest, request.body ?? {});
      const app = await controlPlane.getApp(appId);
      const component = await controlPlane.getComponent(appId, name);
      const { value } = await builds.request(
        {
          appId,
          appName: app.name,
          component: name,
          componentVersion: component.version,
          spec: component.spec,
          ref: body.ref,
        },
        request.caller,
        idempotencyOf(request, `startBuild#${appId}#${name}`),
      );
      let build = value;
      if (build.status === 'queued') {
        try {
          await buildStarter.start(build.id);
        } catch (error) {
          build = await builds.recordFailure(
            build.id,
            { step: 'start', message: `the build workflow did not start: ${(error as Error).message}` },
            request.caller,
          );
        }
      }
      return { status: 202, body: build, location: `/v1/builds/${build.id}` };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/components/{name}/builds',
    operationId: 'listBuilds',
    summary: "A component's builds, newest first",
    tag: 'builds',
    response: pageOf(BuildResponse, 'BuildPage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane, builds }) => {
      await controlPlane.getComponent(request.params[AppId], request.params[ComponentName]);
      return {
        body: await builds.listForComponent(
          request.params[AppId],
          request.params[ComponentName],
          pageRequestOf(request),
        ),
      };
    },
  },
  {
    method: 'GET',
    path: '/v1/builds/{buildId}',
    operationId: 'getBuild',
    summary: 'Read a build: status, artifact (digest, size, media type), source revision, failure, logs',
    tag: 'builds',
    response: BuildResponse,
    status: 200,
    errors: [404],
    handle: async (request, { builds }) => ({ body: await builds.get(request.params[BuildId]) }),
  },
  {
    method: 'POST',
    path: '/v1/apps/{appId}/installs',
    operationId: 'createInstall',
    summary: "Create an install of the app in a customer's account; it starts awaiting access",
    tag: 'installs',
    body: CreateInstallRequest,
    response: InstallResponse,
    status: 201,
    headers: ['Idempotency-Key'],
    errors: [404, 409, 422],
    handle: async (request, { controlPlane }) => {
      const body = parseBody(CreateInstallRequest, request.body);
      const { value, created } = await controlPlane.createInstall(
        request.params[AppId],
        body,
        request.caller,
        idempotencyOf(request, `createInstall#${request.params[AppId]}`),
      );
      return {
        status: created ? 201 : 200,
        body: value,
        version: value.version,
        location: `/v1/installs/${value.id}`,
      };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/installs',
    operationId: 'listInstalls',
    summary: "List an app's installs, oldest first",
    tag: 'installs',
    response: pageOf(InstallResponse, 'InstallPage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane }) => ({
      body: await controlPlane.listInstalls(request.params[AppId], pageRequestOf(request)),
    }),
  },
  {
    method: 'GET',
    path: '/v1/installs/{installId}',
    operationId: 'getInstall',
    summary: 'Read an install (sensitive inputs are named, never shown)',
    tag: 'installs',
    response: InstallResponse,
    status: 200,
    errors: [404],
    handle: async (request, { controlPlane }) => {
      const install = await controlPlane.getInstall(request.params[InstallId]);
      return { body: install, version: install.version };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/installs/{installId}',
    operationId: 'deleteInstall',
    summary:
      'Tear the install down: its components are removed in reverse order through its role, then the install is deleted',
    tag: 'installs',
    response: TeardownResponse,
    status: 202,
    errors: [404],
    handle: async (request, { controlPlane, teardownStarter }) => {
      const install = await controlPlane.getInstall(request.params[InstallId]);
      const teardownId = `teardown-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
      await teardownStarter.start(install.id, teardownId);
      return { status: 202, body: { installId: install.id, teardownId } };
    },
  },
  {
    method: 'GET',
    path: '/v1/installs/{installId}/components',
    operationId: 'listDeployedComponents',
    summary:
      'What is deployed in an install: per component its build, digest, non-sensitive outputs, status and when',
    tag: 'installs',
    response: DeployedComponentsResponse,
    status: 200,
    errors: [404],
    handle: async (request, { controlPlane, deployments }) => {
      const install = await controlPlane.getInstall(request.params[InstallId]);
      return { body: { items: await deployments.list(install.id) } };
    },
  },
  {
    method: 'GET',
    path: '/v1/installs/{installId}/access-template',
    operationId: 'getAccessTemplate',
    summary:
      'The CloudFormation template the customer creates in their account, and a console quick-create link',
    tag: 'installs',
    response: AccessTemplateResponse,
    status: 200,
    errors: [404],
    handle: async (request, { controlPlane, accessTemplate, tenant }) => {
      const install = await controlPlane.getInstall(request.params[InstallId]);
      const app = await controlPlane.getApp(install.appId);
      return {
        body: accessTemplateFor(accessTemplate.template, {
          tenant,
          install: { ...install, appName: app.name },
          trustedRoleArns: accessTemplate.trustedRoleArns,
        }),
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/installs/{installId}/verify',
    operationId: 'verifyInstall',
    summary: "Assume the install's role now: records connected, or access-denied with the cause",
    tag: 'installs',
    response: InstallResponse,
    status: 200,
    errors: [404, 412],
    handle: async (request, { controlPlane, installAccess }) => {
      const install = await controlPlane.getInstall(request.params[InstallId]);
      let check: { roleArn: string; cause?: string };
      try {
        check = await installAccess.verify(install, sessionNameFor(`verify-${install.id}`));
      } catch (error) {
        if (!(error instanceof AccessDeniedError)) throw error;
        check = { roleArn: error.message.match(/assume (\S+)/)?.[1] ?? 'unknown', cause: error.message };
      }
      const updated = await controlPlane.recordAccessCheck(install.id, check, request.caller);
      return { body: updated, version: updated.version };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/events',
    operationId: 'listAppEvents',
    summary: "An app's history, newest first (kept after the app is deleted)",
    tag: 'history',
    response: pageOf(EventResponse, 'EventPage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane }) => ({
      body: await controlPlane.listAppEvents(request.params[AppId], pageRequestOf(request)),
    }),
  },
  {
    method: 'GET',
    path: '/v1/installs/{installId}/events',
    operationId: 'listInstallEvents',
    summary: "An install's history, newest first",
    tag: 'history',
    response: pageOf(EventResponse, 'InstallEventPage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane }) => ({
      body: await controlPlane.listInstallEvents(request.params[InstallId], pageRequestOf(request)),
    }),
  },
  {
    method: 'POST',
    path: '/v1/apps/{appId}/releases',
    operationId: 'createRelease',
    summary:
      "Release builds to installs in waves: one build per component (named, or each component's latest successful build)",
    tag: 'releases',
    body: CreateReleaseRequest,
    response: ReleaseResponse,
    status: 202,
    headers: ['Idempotency-Key'],
    errors: [404, 422],
    handle: async (request, context) => {
      const appId = request.params[AppId];
      const body = parseBody(CreateReleaseRequest, request.body);
      const { release } = await createRelease(
        context,
        appId,
        body,
        request.caller,
        idempotencyOf(request, `createRelease#${appId}`),
      );
      return { status: 202, body: release, location: `/v1/releases/${release.id}` };
    },
  },
  {
    method: 'GET',
    path: '/v1/apps/{appId}/releases',
    operationId: 'listReleases',
    summary: "An app's releases, newest first",
    tag: 'releases',
    response: pageOf(ReleaseResponse, 'ReleasePage'),
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { controlPlane, releases }) => {
      await controlPlane.getApp(request.params[AppId]);
      return { body: await releases.listForApp(request.params[AppId], pageRequestOf(request)) };
    },
  },
  {
    method: 'GET',
    path: '/v1/releases/{releaseId}',
    operationId: 'getRelease',
    summary: 'A release: status, counts, the reason for where it stands, and its installs page by page',
    tag: 'releases',
    response: ReleaseDetailResponse,
    status: 200,
    paged: true,
    errors: [404],
    handle: async (request, { releases }) => {
      const release = await releases.get(request.params[ReleaseId]);
      const installs = await releases.listInstalls(release.id, pageRequestOf(request));
      return { body: { ...release, installs } };
    },
  },
  {
    method: 'POST',
    path: '/v1/releases/{releaseId}/cancel',
    operationId: 'cancelRelease',
    summary: 'Stop starting waves: deploys already started finish, installs not started are cancelled',
    tag: 'releases',
    response: ReleaseResponse,
    status: 202,
    errors: [404, 409],
    handle: async (request, { releases }) => ({
      status: 202,
      body: await releases.requestCancel(request.params[ReleaseId], request.caller),
    }),
  },
  {
    method: 'POST',
    path: '/v1/releases/{releaseId}/retry',
    operationId: 'retryRelease',
    summary: 'A new release of the same builds and strategy to the installs that failed in this one',
    tag: 'releases',
    response: ReleaseResponse,
    status: 202,
    headers: ['Idempotency-Key'],
    errors: [404, 409, 422],
    handle: async (request, context) => {
      const releaseId = request.params[ReleaseId];
      const { release } = await retryRelease(
        context,
        releaseId,
        request.caller,
        idempotencyOf(request, `retryRelease#${releaseId}`),
      );
      return { status: 202, body: release, location: `/v1/releases/${release.id}` };
    },
  },
];
