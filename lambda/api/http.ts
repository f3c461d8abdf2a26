/**
 * The API's HTTP vocabulary, independent of API Gateway: a request, a response, and the error
 * shape every route answers with: {"error":{"code","message","details":[{"path","message"}]}}.
 */

export interface HttpRequest {
  readonly method: string;
  /** The path below the stage, for example /v1/apps/app_123. */
  readonly path: string;
  /** Header names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  /** The raw body, decoded from base64 where API Gateway encoded it. */
  readonly body: string | undefined;
  /** Who called (the SigV4 principal's ARN in AWS; `local` in local mode). */
  readonly caller: string;
  readonly requestId: string;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

/** An error that maps to one HTTP status and the API's error shape. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(value),
  };
}

export function errorResponse(error: HttpError): HttpResponse {
  return json(
    error.status,
    { error: { code: error.code, message: error.message, details: error.details } },
    error.headers,
  );
}
