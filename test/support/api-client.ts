import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { ApiHandler } from '../../lambda/api/app';

export interface ApiResult {
  readonly status: number;
  readonly headers: Record<string, string>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON
  readonly body: any;
  readonly raw: string;
}

export interface CallOptions {
  readonly body?: unknown;
  /** A raw body sent as is (for malformed JSON). */
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  readonly query?: Record<string, string>;
}

/** Calls the API handler with the event API Gateway (REST, Lambda proxy) would send. */
export function apiClient(handler: ApiHandler, caller = 'arn:aws:iam::123456789012:user/tester') {
  return async (method: string, path: string, options: CallOptions = {}): Promise<ApiResult> => {
    const body = options.rawBody ?? (options.body === undefined ? null : JSON.stringify(options.body));
    const event = {
      resource: '/v1/{proxy+}',
      path,
      httpMethod: method,
      headers: { ...(body !== null && { 'Content-Type': 'application/json' }), ...options.headers },
      multiValueHeaders: {},
      queryStringParameters: options.query ?? null,
      multiValueQueryStringParameters: null,
      pathParameters: { proxy: path.replace(/^\/v1\//, '') },
      stageVariables: null,
      body,
      isBase64Encoded: false,
      requestContext: { requestId: `req-${Math.random()}`, identity: { userArn: caller } },
    } as unknown as APIGatewayProxyEvent;
    const result = await handler(event);
    return {
      status: result.statusCode,
      headers: (result.headers ?? {}) as Record<string, string>,
      body: result.body ? JSON.parse(result.body) : undefined,
      raw: result.body,
    };
  };
}
