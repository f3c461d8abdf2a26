/** Reading the parts of a request every route shares: body, parameters, paging and conditional headers. */
import { z } from 'zod';
import type { Idempotency } from '../domain/control-plane';
import { ValidationError } from '../domain/errors';
import { problemsOf } from '../domain/schemas';
import { PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, type PageRequest } from '../domain/store';

/** What a route answers: a body (JSON), a status when not the route's default, and headers it implies. */
export interface Handled {
  readonly status?: number;
  readonly body?: unknown;
  /** Sent as ETag. */
  readonly version?: number;
  /** Sent as Location. */
  readonly location?: string;
}

interface RequestParts {
  readonly query: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === undefined) {
    throw new ValidationError('the request needs a JSON body', [{ path: 'body', message: 'missing' }]);
  }
  const result = schema.safeParse(body);
  if (!result.success)
    throw new ValidationError('the request body is not valid', problemsOf(result.error, 'body'));
  return result.data;
}

export function parseParam<T extends z.ZodType>(
  schema: T,
  value: string | undefined,
  path: string,
): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new ValidationError(
      `${path} is not valid`,
      result.error.issues.map((issue) => ({ path, message: issue.message })),
    );
  }
  return result.data;
}

const PageQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.number().int().min(1).max(PAGE_LIMIT_MAX))
    .optional(),
  nextToken: z.string().min(1).max(2048).optional(),
});

export function pageRequestOf(request: RequestParts): PageRequest {
  const result = PageQuery.safeParse(request.query);
  if (!result.success)
    throw new ValidationError('the query string is not valid', problemsOf(result.error, 'query'));
  return { limit: result.data.limit ?? PAGE_LIMIT_DEFAULT, nextToken: result.data.nextToken };
}

/** Refuses a query string on routes that take none. */
export function noQuery(request: RequestParts): void {
  const names = Object.keys(request.query);
  if (names.length > 0) {
    throw new ValidationError(
      'this route takes no query parameters',
      names.map((name) => ({ path: `query.${name}`, message: 'unknown parameter' })),
    );
  }
}

/** The version named by If-Match (`"3"`, `W/"3"` or `3`), if the header is given. */
export function ifMatchOf(request: RequestParts): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined) return undefined;
  const match = /^\s*(?:W\/)?"?(\d{1,12})"?\s*$/.exec(header);
  if (!match) {
    throw new ValidationError('If-Match must name one version, as the ETag gave it', [
      { path: 'header.if-match', message: `'${header}' is not an ETag this API issued (such as "3")` },
    ]);
  }
  return Number(match[1]);
}

export function ifNoneMatchStar(request: RequestParts): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  if (header.trim() !== '*') {
    throw new ValidationError('If-None-Match supports only *', [
      { path: 'header.if-none-match', message: "use '*' to create only" },
    ]);
  }
  return true;
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

export function idempotencyOf(request: RequestParts, scope: string): Idempotency | undefined {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ValidationError('Idempotency-Key is not valid', [
      { path: 'header.idempotency-key', message: '1-128 characters of letters, digits and . _ : -' },
    ]);
  }
  return { key, scope, request: request.body };
}
