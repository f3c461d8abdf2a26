import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { ApiDependencies } from '../../../lambda/api/app';
import { createApiHandler, toHttpRequest } from '../../../lambda/api/app';

function event(overrides: Partial<APIGatewayProxyEvent>): APIGatewayProxyEvent {
  return {
    resource: '/v1/{proxy+}',
    path: '/v1/health',
    httpMethod: 'GET',
    headers: {},
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body: null,
    isBase64Encoded: false,
    requestContext: { requestId: 'req-1', identity: { userArn: 'arn:aws:iam::123456789012:user/dev' } },
    ...overrides,
  } as APIGatewayProxyEvent;
}

describe('API handler', () => {
  // These routes never reach the control plane; one that did would fail on the empty stand-in.
  const handler = createApiHandler({ tenant: 'acme' } as ApiDependencies);

  it('answers the health route with the tenant', async () => {
    const result = await handler(event({}));
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body)).toEqual({ status: 'ok', tenant: 'acme' });
    expect(result.headers?.['content-type']).toMatch(/application\/json/);
  });

  it('answers 404 and 405 in the error shape', async () => {
    const missing = await handler(event({ path: '/v1/nope' }));
    expect(missing.statusCode).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({
      error: { code: 'NotFound', message: 'no route for GET /v1/nope', details: [] },
    });
    const wrongMethod = await handler(event({ httpMethod: 'DELETE' }));
    expect(wrongMethod.statusCode).toBe(405);
    expect(wrongMethod.headers?.allow).toBe('GET');
  });

  it('lowercases headers, decodes base64 bodies and names the SigV4 caller', () => {
    const request = toHttpRequest(
      event({
        headers: { 'Content-Type': 'application/json' },
        body: Buffer.from('{"a":1}').toString('base64'),
        isBase64Encoded: true,
      }),
    );
    expect(request.headers).toEqual({ 'content-type': 'application/json' });
    expect(request.body).toBe('{"a":1}');
    expect(request.caller).toBe('arn:aws:iam::123456789012:user/dev');
  });
});
