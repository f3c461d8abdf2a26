import { errorResponse, HttpError, type HttpRequest, type HttpResponse } from './http';

export type RouteHandler = (
  request: HttpRequest,
  params: Readonly<Record<string, string>>,
) => Promise<HttpResponse>;

interface Route {
  readonly method: string;
  readonly template: string;
  readonly segments: readonly string[];
  readonly handler: RouteHandler;
}

/**
 * Matches a request to a route by method and path template (`/v1/apps/{appId}`), passes the path
 * parameters, and turns an HttpError into the API's error shape. 404 for an unknown path, 405 (with
 * Allow) for a known path and another method.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, template: string, handler: RouteHandler): this {
    this.routes.push({ method, template, segments: template.split('/').filter(Boolean), handler });
    return this;
  }

  /** The routes served, as `METHOD template`, for the OpenAPI document and its test. */
  list(): { method: string; template: string }[] {
    return this.routes.map(({ method, template }) => ({ method, template }));
  }

  async handle(request: HttpRequest): Promise<HttpResponse> {
    try {
      const segments = request.path.split('/').filter(Boolean);
      const allowed: string[] = [];
      for (const route of this.routes) {
        const params = match(route.segments, segments);
        if (params === undefined) continue;
        if (route.method !== request.method) {
          allowed.push(route.method);
          continue;
        }
        return await route.handler(request, params);
      }
      if (allowed.length > 0) {
        throw new HttpError(
          405,
          'MethodNotAllowed',
          `${request.method} is not allowed on ${request.path}`,
          [],
          {
            allow: allowed.join(', '),
          },
        );
      }
      throw new HttpError(404, 'NotFound', `no route for ${request.method} ${request.path}`);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      throw error;
    }
  }
}

function match(template: readonly string[], actual: readonly string[]): Record<string, string> | undefined {
  if (template.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < template.length; i++) {
    const part = template[i];
    if (part.startsWith('{') && part.endsWith('}')) {
      let value: string;
      try {
        value = decodeURIComponent(actual[i]);
      } catch {
        return undefined;
      }
      params[part.slice(1, -1)] = value;
    } else if (part !== actual[i]) {
      return undefined;
    }
  }
  return params;
}
