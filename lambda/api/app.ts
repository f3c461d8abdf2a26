import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { logger } from '../shared/logger';
import { type HttpRequest, type HttpResponse, json } from './http';
import { Router } from './router';

export interface ApiDependencies {
  readonly tenant: string;
}

/** The routes of the IMS API. */
export function createRouter(deps: ApiDependencies): Router {
  return new Router().add('GET', '/v1/health', async () => json(200, { status: 'ok', tenant: deps.tenant }));
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
  return (event) => handleProxyEvent(router, event);
}

async function handleProxyEvent(router: Router, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const request = toHttpRequest(event);
  logger.appendKeys({ requestId: request.requestId });
  try {
    const response = await router.handle(request);
    logger.info('request', { method: request.method, path: request.path, status: response.status });
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
}
