/**
 * Serves an API Gateway proxy handler over plain HTTP on loopback: each request becomes the event
 * API Gateway would send (REST API, Lambda proxy integration), so local mode runs the deployed
 * handler code unchanged.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

export type ProxyHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

/** API Gateway's own payload limit; the handler enforces its tighter one. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface LocalHttpServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return 'too-large';
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function toProxyEvent(request: IncomingMessage, body: Buffer, caller: string): APIGatewayProxyEvent {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i];
    const value = request.rawHeaders[i + 1];
    headers[name] = value;
    multiValueHeaders[name] = [...(multiValueHeaders[name] ?? []), value];
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    multiQuery[name] = [...(multiQuery[name] ?? []), value];
  }
  const hasQuery = Object.keys(query).length > 0;
  const requestId = randomUUID();
  return {
    resource: '/v1/{proxy+}',
    path: url.pathname,
    httpMethod: request.method ?? 'GET',
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: { proxy: url.pathname.replace(/^\/v1\//, '') },
    stageVariables: null,
    body: body.length > 0 ? body.toString('base64') : null,
    isBase64Encoded: body.length > 0,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: undefined,
      protocol: `HTTP/${request.httpVersion}`,
      httpMethod: request.method ?? 'GET',
      identity: { userArn: caller, sourceIp: request.socket.remoteAddress ?? '127.0.0.1' },
      path: `/local${url.pathname}`,
      stage: 'local',
      requestId,
      requestTimeEpoch: Date.now(),
      resourceId: 'local',
      resourcePath: '/v1/{proxy+}',
    } as APIGatewayProxyEvent['requestContext'],
  };
}

/** Serves `handler` on 127.0.0.1:`port` (0 for any free port). */
export function serveProxyHandler(
  handler: ProxyHandler,
  port: number,
  caller = 'local',
): Promise<LocalHttpServer> {
  const server: Server = createServer(async (request, response) => {
    try {
      const body = await readBody(request);
      if (body === 'too-large') {
        response.writeHead(413, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
        response.end(
          JSON.stringify({
            error: {
              code: 'PayloadTooLarge',
              message: `request body exceeds ${MAX_BODY_BYTES} bytes`,
              details: [],
            },
          }),
        );
        return;
      }
      const result = await handler(toProxyEvent(request, body, caller));
      const payload = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body);
      response.writeHead(result.statusCode, {
        ...(result.headers as Record<string, string>),
        'content-length': payload.length,
      });
      response.end(payload);
    } catch (error) {
      response.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
      response.end(
        JSON.stringify({ error: { code: 'BadGateway', message: (error as Error).message, details: [] } }),
      );
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${bound}`,
        port: bound,
        stop: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
