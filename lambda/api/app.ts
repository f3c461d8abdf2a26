import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import {
  ConflictError,
  DomainError,
  IdempotencyKeyReusedError,
  NotFoundError,
  ValidationError,
  VersionConflictError,
} from '../domain/errors';
import { logger } from '../shared/logger';
import { HttpError, type HttpRequest, type HttpResponse, json } from './http';
import { openApiDocument } from './openapi';
import { noQuery } from './request';
import { Router } from './router';
import { ROUTES, type RouteContext, type RouteDefinition } from './routes';

/** The largest request body accepted: a release naming 10,000 installs fits (API Gateway allows 10 MB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What the API serves from: the route table's context (tenant, domain services, install access). */
export type ApiDependencies = RouteContext;

const STATUS_OF: [new (...args: never[]) => DomainError, number][] = [
  [ValidationError, 400],
  [NotFoundError, 404],
  [ConflictError, 409],
  [VersionConflictError, 412],
  [IdempotencyKeyReusedError, 422],
];

function toHttpError(error: DomainError): HttpError {
  const status = STATUS_OF.find(([kind]) => error instanceof kind)?.[1] ?? 400;
  return new HttpError(status, error.code, error.message, error.problems);
}

/** Parses a JSON body: size, media type and syntax, each refused with what is wrong. */
function jsonBody(request: HttpRequest, route: RouteDefinition): unknown {
  const raw = request.body;
  if (raw === undefined || raw.length === 0) return undefined;
  if (!route.body)
    throw new HttpError(400, 'ValidationFailed', `${route.method} ${route.path} takes no body`, [
      { path: 'body', message: 'not expected' },
    ]);
  if (Buffer.byteLength(raw, 'utf8') > MAX_BODY_BYTES) {
    throw new HttpError(413, 'PayloadTooLarge', `the body exceeds ${MAX_BODY_BYTES} bytes`, [
      { path: 'body', message: 'too large' },
    ]);
  }
  const type = request.headers['content-type'];
  if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, 'UnsupportedMediaType', `the body must be application/json, not ${type}`, [
      { path: 'header.content-type', message: 'use application/json' },
    ]);
  }
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new HttpError(400, 'MalformedJson', 'the body is not valid JSON', [
      { path: 'body', message: (error as Error).message },
    ]);
  }
}

function respond(
  route: RouteDefinition,
  handled: Awaited<ReturnType<RouteDefinition['handle']>>,
): HttpResponse {
  const status = handled.status ?? route.status;
  const headers: Record<string, string> = {};
  if (handled.version !== undefined) headers.etag = `"${handled.version}"`;
  if (handled.location !== undefined) headers.location = handled.location;
  if (status === 204) return { status, headers, body: '' };
  return json(status, handled.body, headers);
}

/** The routes of the IMS API. */
export function createRouter(deps: ApiDependencies): Router {
  const router = new Router();
  for (const route of ROUTES) {
    router.add(route.method, route.path, async (request, params) => {
      try {
        const body = jsonBody(request, route);
        if (!route.paged) noQuery(request);
        const handled = await route.handle(
          { params, query: request.query, headers: request.headers, body, caller: request.caller },
          deps,
        );
        return respond(route, handled);
      } catch (error) {
        if (error instanceof DomainError) throw toHttpError(error);
        throw error;
      }
    });
  }
  const document = openApiDocument(ROUTES, deps.tenant);
  router.add('GET', '/v1/openapi.json', async () => json(200, document));
  return router;
}

/** Turns API Gateway's proxy event into the API's request: lowercased headers, decoded body. */
export function toHttpRequest(event: APIGatewayProxyEvent): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.queryStringParameters ?? {})) {
    if (value !== undefined) query[name] = value;
  }
  const body =
    event.body === null || event.body === undefined
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
  return {
    method: event.httpMethod.toUpperCase(),
    path: event.path,
    headers,
    query,
    body,
    caller: event.requestContext?.identity?.userArn ?? 'unknown',
    requestId: event.requestContext?.requestId ?? 'unknown',
  };
}

export function toProxyResult(response: HttpResponse): APIGatewayProxyResult {
  return { statusCode: response.status, headers: response.headers, body: response.body };
}

export type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

/** The API Gateway proxy handler over the given dependencies: Lambda and local mode both build it here. */
export function createApiHandler(deps: ApiDependencies): ApiHandler {
  const router = createRouter(deps);
  return async (event) => {
    const request = toHttpRequest(event);
    logger.appendKeys({ requestId: request.requestId });
    try {
      const response = await router.handle(request);
      logger.info('request', {
        method: request.method,
        path: request.path,
        status: response.status,
        caller: request.caller,
      });
      return toProxyResult(response);
    } catch (error) {
      logger.error('unhandled error', { method: request.method, path: request.path, error: error as Error });
      return toProxyResult(
        json(500, {
          error: {
            code: 'InternalError',
            message: `internal error; request id ${request.requestId}`,
            details: [],
          },
        }),
      );
    }
  };
}
