/**
 * The OpenAPI 3.1 document of the API, generated from the route table and the same zod schemas
 * that validate requests (zod emits JSON Schema 2020-12, the dialect OpenAPI 3.1 uses).
 */
import { z } from 'zod';
import { ErrorResponse } from './responses';
import type { RouteDefinition } from './routes';

type Json = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted: recorded and started',
  204: 'No content',
  400: 'The request is not valid; details name each field',
  404: 'Not found',
  409: 'Conflicts with the current state',
  412: 'If-Match names a version that is no longer current',
  413: 'The body is too large',
  415: 'The body is not JSON',
  422: 'The Idempotency-Key was used for a different request',
};

const HEADER_DOCS: Record<string, string> = {
  'Idempotency-Key': 'Repeating a request with the same key answers with what the first created (24 hours).',
  'If-Match': 'The ETag (version) read; the change is refused with 412 if it is no longer current.',
  'If-None-Match': "'*': create only; refused with 409 if it exists.",
};

/**
 * Every schema with an id (`.meta({ id })`) as a component, described as callers send it (fields
 * with defaults are optional), and a $ref for the schemas the routes name.
 */
function schemasOf(routes: readonly RouteDefinition[]): {
  components: Json;
  refOf: (schema: z.ZodType) => Json;
} {
  const idOf = (schema: z.ZodType, where: string): string => {
    const id = z.globalRegistry.get(schema)?.id;
    if (typeof id !== 'string')
      throw new Error(`${where}: its schema needs .meta({ id }) to appear in the OpenAPI document`);
    return id;
  };
  for (const route of routes) {
    if (route.body) idOf(route.body, `${route.operationId} body`);
    if (route.response) idOf(route.response, `${route.operationId} response`);
  }
  idOf(ErrorResponse, 'ErrorResponse');
  const emitted = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  const components: Json = {};
  if ('__shared' in emitted.schemas) {
    throw new Error(
      'a schema used in several places has no .meta({ id }); name it so the document can reference it',
    );
  }
  for (const [id, schema] of Object.entries(emitted.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema as Json;
    components[id] = rest;
  }
  return { components, refOf: (schema) => ({ $ref: `#/components/schemas/${idOf(schema, 'route')}` }) };
}

export function openApiDocument(routes: readonly RouteDefinition[], tenant: string): Json {
  const { components, refOf } = schemasOf(routes);
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const parameters: Json[] = [];
    for (const match of route.path.matchAll(/\{(\w+)\}/g)) {
      parameters.push({ name: match[1], in: 'path', required: true, schema: { type: 'string' } });
    }
    if (route.paged) {
      parameters.push(
        {
          name: 'limit',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 1, maximum: 100, default: 25 },
        },
        { name: 'nextToken', in: 'query', required: false, schema: { type: 'string' } },
      );
    }
    for (const header of route.headers ?? []) {
      parameters.push({
        name: header,
        in: 'header',
        required: false,
        description: HEADER_DOCS[header],
        schema: { type: 'string' },
      });
    }
    const success = new Set([route.status]);
    if (route.headers?.includes('Idempotency-Key')) success.add(200);
    if (route.method === 'PUT') success.add(201);
    const responses: Json = {};
    for (const status of [...success].sort()) {
      responses[String(status)] =
        status === 204 || !route.response
          ? { description: STATUS_TEXT[status] }
          : {
              description: STATUS_TEXT[status],
              content: { 'application/json': { schema: refOf(route.response) } },
            };
    }
    const errors = new Set([400, ...route.errors, ...(route.body ? [413, 415] : [])]);
    for (const status of [...errors].sort()) {
      responses[String(status)] = {
        description: STATUS_TEXT[status],
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const operation: Json = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(parameters.length > 0 && { parameters }),
      ...(route.body && {
        requestBody: {
          required: !route.optionalBody,
          content: { 'application/json': { schema: refOf(route.body) } },
        },
      }),
      responses,
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  paths['/v1/openapi.json'] = {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document',
      tags: ['meta'],
      responses: {
        '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Ferry IMS API',
      version: '1.0.0',
      description: `The infrastructure management server of tenant ${tenant}. Every route requires SigV4 (IAM) auth in AWS.`,
    },
    servers: [{ url: '/' }],
    security: [{ sigv4: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description: 'AWS Signature Version 4 (IAM auth).',
        },
      },
    },
  };
}
