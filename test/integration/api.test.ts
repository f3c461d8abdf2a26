import SwaggerParser from '@apidevtools/swagger-parser';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createApiHandler } from '../../lambda/api/app';
import { ROUTES } from '../../lambda/api/routes';
import { documentClient } from '../../lambda/shared/dynamo';
import { type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';
import { apiClient } from '../support/api-client';
import { freshDomain } from '../support/control-plane';

let dynamo: LocalDynamoDb;
beforeAll(async () => {
  dynamo = await startDynamoDb();
});
afterAll(async () => {
  await dynamo.stop();
});

/** A fresh API on its own table, and a way to read every item it holds. */
async function freshApi() {
  const {
    controlPlane,
    builds,
    buildStarter,
    installAccess,
    accessTemplate,
    deployments,
    releases,
    releaseStarter,
    teardownStarter,
    table,
  } = await freshDomain(dynamo);
  const call = apiClient(
    createApiHandler({
      tenant: 'acme',
      controlPlane,
      builds,
      buildStarter,
      installAccess,
      accessTemplate,
      deployments,
      releases,
      releaseStarter,
      teardownStarter,
    }),
  );
  const items = async () =>
    (await documentClient(dynamo.clientConfig).send(new ScanCommand({ TableName: table }))).Items ?? [];
  return { call, items, buildStarter, installAccess, deployments, teardownStarter };
}

const image = (extra: Record<string, unknown> = {}) => ({
  type: 'image',
  image: { uri: 'docker.io/library/nginx:1.27' },
  ...extra,
});

describe('apps', () => {
  it('creates, reads, lists, updates and deletes an app', async () => {
    const { call } = await freshApi();
    const created = await call('POST', '/v1/apps', {
      body: { name: 'shop', description: 'the shop', inputs: [{ name: 'domain', required: true }] },
    });
    expect(created.status).toBe(201);
    expect(created.headers.etag).toBe('"1"');
    expect(created.headers.location).toBe(`/v1/apps/${created.body.id}`);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(/^app_[0-9a-z]{26}$/),
      name: 'shop',
      inputs: [{ name: 'domain', required: true, sensitive: false }],
      version: 1,
      componentCount: 0,
      installCount: 0,
    });

    const read = await call('GET', `/v1/apps/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);

    const updated = await call('PATCH', `/v1/apps/${created.body.id}`, {
      body: { description: 'the new shop' },
      headers: { 'If-Match': '"1"' },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ description: 'the new shop', version: 2 });

    const stale = await call('PATCH', `/v1/apps/${created.body.id}`, {
      body: { description: 'x' },
      headers: { 'If-Match': '"1"' },
    });
    expect(stale.status).toBe(412);
    expect(stale.body.error).toMatchObject({
      code: 'VersionConflict',
      details: [{ path: 'header.if-match' }],
    });

    const deleted = await call('DELETE', `/v1/apps/${created.body.id}`);
    expect(deleted.status).toBe(204);
    expect((await call('GET', `/v1/apps/${created.body.id}`)).status).toBe(404);
    // The name is free again.
    expect((await call('POST', '/v1/apps', { body: { name: 'shop' } })).status).toBe(201);
  });

  it('refuses a duplicate name with 409', async () => {
    const { call } = await freshApi();
    await call('POST', '/v1/apps', { body: { name: 'shop' } });
    const duplicate = await call('POST', '/v1/apps', { body: { name: 'shop' } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error).toMatchObject({ code: 'NameTaken', details: [{ path: 'body.name' }] });
  });

  it('pages through apps by name with an opaque token', async () => {
    const { call } = await freshApi();
    for (const name of ['delta', 'alpha', 'charlie', 'bravo', 'echo'])
      await call('POST', '/v1/apps', { body: { name } });
    const names: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await call('GET', '/v1/apps', { query: { limit: '2', ...(nextToken && { nextToken }) } });
      expect(page.status).toBe(200);
      names.push(...page.body.items.map((app: { name: string }) => app.name));
      nextToken = page.body.nextToken;
      pages++;
    } while (nextToken);
    expect(names).toEqual(['alpha', 'bravo', 'charlie', 'delta', 'echo']);
    expect(pages).toBeGreaterThanOrEqual(3);

    const forged = await call('GET', '/v1/apps', {
      query: {
        nextToken: Buffer.from(
          JSON.stringify({ pk: 'INSTALL#x', sk: 'INSTALL', gsi1pk: 'OTHER', gsi1sk: 'a' }),
        ).toString('base64url'),
      },
    });
    expect(forged.status).toBe(400);
    expect(forged.body.error.details).toEqual([{ path: 'query.nextToken', message: expect.any(String) }]);
    expect((await call('GET', '/v1/apps', { query: { limit: '0' } })).status).toBe(400);
    expect((await call('GET', '/v1/apps', { query: { limit: '101' } })).status).toBe(400);
    expect((await call('GET', '/v1/apps', { query: { page: '2' } })).body.error.details).toEqual([
      { path: 'query.page', message: 'unknown field' },
    ]);
  });

  it('answers a repeated Idempotency-Key with the first result and refuses it for another request', async () => {
    const { call } = await freshApi();
    const headers = { 'Idempotency-Key': 'create-shop-1' };
    const first = await call('POST', '/v1/apps', { body: { name: 'shop' }, headers });
    const again = await call('POST', '/v1/apps', { body: { name: 'shop' }, headers });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const other = await call('POST', '/v1/apps', { body: { name: 'other' }, headers });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IdempotencyKeyReused');
  });

  it('creates one app for concurrent requests with the same Idempotency-Key', async () => {
    const { call } = await freshApi();
    const headers = { 'Idempotency-Key': 'race' };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => call('POST', '/v1/apps', { body: { name: 'racer' }, headers })),
    );
    expect(results.map((result) => result.status).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(results.map((result) => result.body.id)).size).toBe(1);
    expect((await call('GET', '/v1/apps')).body.items).toHaveLength(1);
  });

  it('refuses to delete an app with installs (409), and keeps its history after deletion', async () => {
    const { call } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    await call('POST', `/v1/apps/${app.id}/installs`, {
      body: { accountId: '111122223333', region: 'eu-west-1' },
    });
    const refused = await call('DELETE', `/v1/apps/${app.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('AppHasInstalls');

    const other = (await call('POST', '/v1/apps', { body: { name: 'gone' } })).body;
    await call('PUT', `/v1/apps/${other.id}/components/web`, { body: image() });
    expect((await call('DELETE', `/v1/apps/${other.id}`)).status).toBe(204);
    const history = await call('GET', `/v1/apps/${other.id}/events`);
    expect(history.status).toBe(200);
    expect(history.body.items.map((event: { type: string }) => event.type)).toEqual([
      'app.deleted',
      'component.created',
      'app.created',
    ]);
  });

  it('refuses to remove an input a component references', async () => {
    const { call } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop', inputs: [{ name: 'domain' }] } }))
      .body;
    await call('PUT', `/v1/apps/${app.id}/components/web`, {
      body: image({
        service: { cluster: 'c', subnets: ['s'], environment: { DOMAIN: '{{ install.inputs.domain }}' } },
      }),
    });
    const refused = await call('PATCH', `/v1/apps/${app.id}`, { body: { inputs: [] } });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual([
      {
        path: 'components.web.service.environment.DOMAIN',
        message: expect.stringContaining('install.inputs.domain'),
      },
    ]);
  });
});

describe('components', () => {
  async function appWithInputs() {
    const api = await freshApi();
    const app = (
      await api.call('POST', '/v1/apps', {
        body: {
          name: 'shop',
          inputs: [
            { name: 'domain', required: true },
            { name: 'db_password', sensitive: true },
          ],
        },
      })
    ).body;
    return { ...api, app };
  }

  it.each([
    ['image', image()],
    [
      'image from private ECR',
      {
        type: 'image',
        image: {
          uri: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/api@sha256:${'a'.repeat(64)}`,
          roleArn: 'arn:aws:iam::123456789012:role/pull',
        },
      },
    ],
    [
      'dockerfile',
      {
        type: 'dockerfile',
        source: { repo: 'https://github.com/acme/api.git', ref: 'v1.2.0', path: 'services/api' },
        buildArgs: { VERSION: '1.2.0' },
        target: 'runtime',
        service: {
          cluster: 'main',
          subnets: ['subnet-1'],
          cpu: 512,
          memory: '{{ install.inputs.domain }}',
          port: 8080,
        },
      },
    ],
    [
      'helm prebuilt',
      {
        type: 'helm',
        chart: {
          kind: 'prebuilt',
          repo: 'https://charts.bitnami.com/bitnami',
          name: 'redis',
          version: '19.0.1',
        },
      },
    ],
    [
      'helm source',
      {
        type: 'helm',
        chart: { kind: 'source', source: { repo: 'file:///src/charts', path: 'web' } },
        values: { replicas: 2 },
      },
    ],
    [
      'terraform',
      {
        type: 'terraform',
        source: { repo: 'git@github.com:acme/infra.git' },
        terraformVersion: '1.9.8',
        variables: { size: 3 },
      },
    ],
    [
      'custom',
      {
        type: 'custom',
        plugin: {
          image: 'ghcr.io/acme/plugin:1',
          build: { commands: ['make'] },
          deploy: { commands: ['./deploy'] },
        },
      },
    ],
  ])('saves a valid %s component with its defaults', async (_name, spec) => {
    const { call, app } = await appWithInputs();
    const saved = await call('PUT', `/v1/apps/${app.id}/components/part`, { body: spec });
    expect(saved.status).toBe(201);
    expect(saved.body).toMatchObject({
      appId: app.id,
      name: 'part',
      version: 1,
      spec: { type: spec.type, dependsOn: [] },
    });
    expect((await call('GET', `/v1/apps/${app.id}/components/part`)).body).toEqual(saved.body);
  });

  it.each([
    ['a missing type', {}, 'body.type'],
    ['an unknown type', { type: 'lambda' }, 'body.type'],
    ['an unknown field', image({ colour: 'red' }), 'body.colour'],
    ['an image without tag or digest', { type: 'image', image: { uri: 'nginx' } }, 'body.image.uri'],
    [
      'a private ECR image without a role',
      { type: 'image', image: { uri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1' } },
      'body.image.roleArn',
    ],
    [
      'a git path escaping the repository',
      { type: 'terraform', source: { repo: 'https://x/y.git', path: '../etc' }, terraformVersion: '1.9.8' },
      'body.source.path',
    ],
    [
      'a terraform version range',
      { type: 'terraform', source: { repo: 'https://x/y.git' }, terraformVersion: '~> 1.9' },
      'body.terraformVersion',
    ],
    [
      'a custom plugin without a deploy step',
      { type: 'custom', plugin: { image: 'a/b:1', build: { commands: ['x'] } } },
      'body.plugin.deploy',
    ],
    ['a wrongly typed field', image({ dependsOn: 'db' }), 'body.dependsOn'],
  ])('refuses %s with 400 naming the field', async (_name, spec, path) => {
    const { call, app } = await appWithInputs();
    const refused = await call('PUT', `/v1/apps/${app.id}/components/part`, { body: spec });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details.map((detail: { path: string }) => detail.path)).toContain(path);
  });

  it('refuses a name outside the alphabet', async () => {
    const { call, app } = await appWithInputs();
    const refused = await call('PUT', `/v1/apps/${app.id}/components/Web_1`, { body: image() });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details[0]).toMatchObject({ path: 'path.name' });
  });

  it('records template references as dependencies and refuses unknown references by path', async () => {
    const { call, app } = await appWithInputs();
    await call('PUT', `/v1/apps/${app.id}/components/db`, {
      body: { type: 'terraform', source: { repo: 'https://x/db.git' }, terraformVersion: '1.9.8' },
    });
    await call('PUT', `/v1/apps/${app.id}/components/api`, { body: image() });
    const web = await call('PUT', `/v1/apps/${app.id}/components/web`, {
      body: image({
        dependsOn: ['api'],
        service: {
          cluster: 'main',
          subnets: ['s'],
          environment: {
            DB: '{{ components.db.outputs.endpoint }}',
            HOST: '{{install.inputs.domain}}',
            R: '{{ install.region }}',
          },
        },
      }),
    });
    expect(web.status).toBe(201);
    expect(web.body.dependencies).toEqual(['api', 'db']);

    const bad = await call('PUT', `/v1/apps/${app.id}/components/bad`, {
      body: image({
        service: {
          cluster: '{{ components.nope.outputs.cluster }}',
          subnets: ['{{ install.inputs.missing }}'],
          environment: { D: '{{ components.db.image.uri }}', E: '{{ install.secret }}' },
        },
      }),
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual(
      expect.arrayContaining([
        { path: 'body.service.cluster', message: expect.stringContaining("component 'nope'") },
        { path: 'body.service.subnets[0]', message: expect.stringContaining("input 'missing'") },
        { path: 'body.service.environment.D', message: expect.stringContaining('produces no image') },
        { path: 'body.service.environment.E', message: expect.any(String) },
      ]),
    );
    expect((await call('GET', `/v1/apps/${app.id}/components/bad`)).status).toBe(404);
  });

  it('refuses a component that closes a cycle, naming the cycle', async () => {
    const { call, app } = await appWithInputs();
    await call('PUT', `/v1/apps/${app.id}/components/a`, { body: image() });
    await call('PUT', `/v1/apps/${app.id}/components/b`, { body: image({ dependsOn: ['a'] }) });
    await call('PUT', `/v1/apps/${app.id}/components/c`, {
      body: image({ service: { cluster: '{{ components.b.outputs.x }}', subnets: ['s'] } }),
    });
    const cycle = await call('PUT', `/v1/apps/${app.id}/components/a`, { body: image({ dependsOn: ['c'] }) });
    expect(cycle.status).toBe(400);
    expect(cycle.body.error.message).toContain('a -> c -> b -> a');
    const self = await call('PUT', `/v1/apps/${app.id}/components/d`, { body: image({ dependsOn: ['d'] }) });
    expect(self.status).toBe(400);
    expect(self.body.error.details[0]).toMatchObject({
      path: 'body.dependsOn[0]',
      message: expect.stringContaining('d -> d'),
    });
  });

  it('updates only the version named by If-Match, and creates only with If-None-Match: *', async () => {
    const { call, app } = await appWithInputs();
    const path = `/v1/apps/${app.id}/components/web`;
    expect((await call('PUT', path, { body: image(), headers: { 'If-None-Match': '*' } })).status).toBe(201);
    expect((await call('PUT', path, { body: image(), headers: { 'If-None-Match': '*' } })).status).toBe(409);
    const updated = await call('PUT', path, {
      body: image({ dependsOn: [] }),
      headers: { 'If-Match': '"1"' },
    });
    expect(updated.status).toBe(200);
    expect(updated.headers.etag).toBe('"2"');
    expect((await call('PUT', path, { body: image(), headers: { 'If-Match': '"1"' } })).status).toBe(412);
    expect((await call('PUT', path, { body: image(), headers: { 'If-Match': 'banana' } })).status).toBe(400);
  });

  it('lists components and refuses to delete one another depends on', async () => {
    const { call, app } = await appWithInputs();
    await call('PUT', `/v1/apps/${app.id}/components/db`, { body: image() });
    await call('PUT', `/v1/apps/${app.id}/components/web`, { body: image({ dependsOn: ['db'] }) });
    const list = await call('GET', `/v1/apps/${app.id}/components`);
    expect(list.body.items.map((component: { name: string }) => component.name)).toEqual(['db', 'web']);
    const refused = await call('DELETE', `/v1/apps/${app.id}/components/db`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain('needed by web');
    expect((await call('DELETE', `/v1/apps/${app.id}/components/web`)).status).toBe(204);
    expect((await call('DELETE', `/v1/apps/${app.id}/components/db`)).status).toBe(204);
    expect((await call('GET', `/v1/apps/${app.id}`)).body.componentCount).toBe(0);
  });

  it('never lets two concurrent writes close a cycle between them', async () => {
    const { call, app } = await appWithInputs();
    await call('PUT', `/v1/apps/${app.id}/components/x`, { body: image() });
    await call('PUT', `/v1/apps/${app.id}/components/y`, { body: image() });
    const [first, second] = await Promise.all([
      call('PUT', `/v1/apps/${app.id}/components/x`, { body: image({ dependsOn: ['y'] }) }),
      call('PUT', `/v1/apps/${app.id}/components/y`, { body: image({ dependsOn: ['x'] }) }),
    ]);
    expect([first.status, second.status].sort()).toEqual([200, 400]);
  });
});

describe('installs', () => {
  async function shop() {
    const api = await freshApi();
    const app = (
      await api.call('POST', '/v1/apps', {
        body: {
          name: 'shop',
          inputs: [
            { name: 'domain', required: true },
            { name: 'db_password', required: true, sensitive: true },
            { name: 'tier', default: 'small' },
          ],
        },
      })
    ).body;
    return { ...api, app };
  }

  it('creates an install awaiting access with a unique external id, never showing sensitive inputs', async () => {
    const { call, app, items } = await shop();
    const created = await call('POST', `/v1/apps/${app.id}/installs`, {
      body: {
        accountId: '111122223333',
        region: 'eu-west-1',
        inputs: { domain: 'shop.example.com', db_password: 's3cr3t-value' },
      },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(/^inst_[0-9a-z]{26}$/),
      appId: app.id,
      accountId: '111122223333',
      region: 'eu-west-1',
      status: 'awaiting-access',
      inputs: { domain: 'shop.example.com' },
      sensitiveInputs: ['db_password'],
      externalId: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/),
    });
    const read = await call('GET', `/v1/installs/${created.body.id}`);
    expect(read.body).toEqual(created.body);
    const second = await call('POST', `/v1/apps/${app.id}/installs`, {
      body: { accountId: '111122223333', region: 'eu-west-1', inputs: { domain: 'b', db_password: 'p' } },
    });
    expect(second.body.externalId).not.toBe(created.body.externalId);

    // Nothing the API returns, and nothing stored, holds the secret in clear.
    const events = await call('GET', `/v1/installs/${created.body.id}/events`);
    expect(events.body.items).toEqual([
      expect.objectContaining({
        type: 'install.created',
        data: expect.objectContaining({ inputs: { domain: 'shop.example.com', db_password: '(sensitive)' } }),
      }),
    ]);
    for (const response of [
      created,
      read,
      events,
      await call('GET', `/v1/apps/${app.id}/installs`),
      await call('GET', `/v1/apps/${app.id}/events`),
    ]) {
      expect(response.raw).not.toContain('s3cr3t-value');
    }
    expect(JSON.stringify(await items())).not.toContain('s3cr3t-value');
    expect(JSON.stringify(await items())).toContain('"sealedInputs":{"db_password":"local:');
  });

  it.each([
    [{ accountId: '1234', region: 'eu-west-1', inputs: { domain: 'd', db_password: 'p' } }, 'body.accountId'],
    [
      { accountId: '111122223333', region: 'eu-west-9', inputs: { domain: 'd', db_password: 'p' } },
      'body.region',
    ],
    [{ accountId: '111122223333', region: 'eu-west-1', inputs: { db_password: 'p' } }, 'body.inputs.domain'],
    [
      {
        accountId: '111122223333',
        region: 'eu-west-1',
        inputs: { domain: 'd', db_password: 'p', colour: 'x' },
      },
      'body.inputs.colour',
    ],
    [
      {
        accountId: '111122223333',
        region: 'eu-west-1',
        inputs: { domain: 'd', db_password: 'p' },
        role: 'x',
      },
      'body.role',
    ],
  ])('refuses %j naming %s, writing nothing', async (body, path) => {
    const { call, app, items } = await shop();
    const before = await items();
    const refused = await call('POST', `/v1/apps/${app.id}/installs`, { body });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details.map((detail: { path: string }) => detail.path)).toContain(path);
    expect(await items()).toEqual(before);
  });

  it('answers 404 for an install of an unknown app and an unknown install', async () => {
    const { call } = await shop();
    expect(
      (
        await call('POST', '/v1/apps/app_nope/installs', {
          body: { accountId: '111122223333', region: 'eu-west-1' },
        })
      ).status,
    ).toBe(404);
    expect((await call('GET', '/v1/installs/inst_nope')).status).toBe(404);
    expect((await call('GET', '/v1/installs/inst_nope/events')).status).toBe(404);
  });

  it('lists installs and puts install events in the app history, newest first', async () => {
    const { call, app } = await shop();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await call('POST', `/v1/apps/${app.id}/installs`, {
        body: {
          accountId: `11112222333${i}`,
          region: 'us-east-1',
          inputs: { domain: `d${i}`, db_password: 'p' },
        },
      });
      ids.push(created.body.id);
    }
    expect(
      (await call('GET', `/v1/apps/${app.id}/installs`)).body.items.map((i: { id: string }) => i.id),
    ).toEqual(ids);
    const history = await call('GET', `/v1/apps/${app.id}/events`, { query: { limit: '2' } });
    expect(history.body.items.map((e: { installId?: string }) => e.installId)).toEqual([ids[2], ids[1]]);
    const rest = await call('GET', `/v1/apps/${app.id}/events`, {
      query: { nextToken: history.body.nextToken },
    });
    expect(rest.body.items.map((e: { type: string }) => e.type)).toEqual(['install.created', 'app.created']);
    expect(rest.body.items[1].actor).toBe('arn:aws:iam::123456789012:user/tester');
  });
});

describe('builds', () => {
  async function appWithComponent() {
    const api = await freshApi();
    const app = (await api.call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    await api.call('PUT', `/v1/apps/${app.id}/components/web`, {
      body: { type: 'dockerfile', source: { repo: 'https://github.com/acme/web.git' } },
    });
    return { ...api, app };
  }

  it('records a build, starts its workflow and answers 202', async () => {
    const { call, app, buildStarter } = await appWithComponent();
    const started = await call('POST', `/v1/apps/${app.id}/components/web/builds`, {
      body: { ref: 'v1.2.0' },
    });
    expect(started.status).toBe(202);
    expect(started.headers.location).toBe(`/v1/builds/${started.body.id}`);
    expect(started.body).toMatchObject({
      id: expect.stringMatching(/^build_[0-9a-z]{26}$/),
      appId: app.id,
      appName: 'shop',
      component: 'web',
      componentType: 'dockerfile',
      componentVersion: 1,
      ref: 'v1.2.0',
      status: 'queued',
      spec: { type: 'dockerfile', source: { repo: 'https://github.com/acme/web.git', ref: 'main' } },
    });
    expect(buildStarter.started).toEqual([started.body.id]);
    expect((await call('GET', `/v1/builds/${started.body.id}`)).body).toEqual(started.body);
    const history = await call('GET', `/v1/apps/${app.id}/events`, { query: { limit: '1' } });
    expect(history.body.items[0]).toMatchObject({
      type: 'build.queued',
      data: { buildId: started.body.id, ref: 'v1.2.0' },
    });
  });

  it('starts one build for two requests with the same Idempotency-Key', async () => {
    const { call, app, buildStarter } = await appWithComponent();
    const headers = { 'Idempotency-Key': 'build-web-1' };
    const [first, second] = await Promise.all([
      call('POST', `/v1/apps/${app.id}/components/web/builds`, { headers }),
      call('POST', `/v1/apps/${app.id}/components/web/builds`, { headers }),
    ]);
    expect(second.body.id).toBe(first.body.id);
    expect(new Set(buildStarter.started)).toEqual(new Set([first.body.id]));
    expect((await call('GET', `/v1/apps/${app.id}/components/web/builds`)).body.items).toHaveLength(1);
  });

  it('records a build whose workflow could not start as failed, with the reason', async () => {
    const { call, app, buildStarter } = await appWithComponent();
    buildStarter.failWith = new Error(
      'AccessDeniedException: not authorized to perform states:StartExecution',
    );
    const refused = await call('POST', `/v1/apps/${app.id}/components/web/builds`);
    expect(refused.status).toBe(202);
    expect(refused.body).toMatchObject({
      status: 'failed',
      failure: { step: 'start', message: expect.stringContaining('states:StartExecution') },
    });
    const history = await call('GET', `/v1/apps/${app.id}/events`, { query: { limit: '2' } });
    expect(history.body.items.map((event: { type: string }) => event.type)).toEqual([
      'build.failed',
      'build.queued',
    ]);
  });

  it('lists builds newest first and refuses bad requests', async () => {
    const { call, app } = await appWithComponent();
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push((await call('POST', `/v1/apps/${app.id}/components/web/builds`)).body.id);
    const list = await call('GET', `/v1/apps/${app.id}/components/web/builds`);
    expect(list.body.items.map((build: { id: string }) => build.id)).toEqual(ids.reverse());
    expect((await call('POST', `/v1/apps/${app.id}/components/nope/builds`)).status).toBe(404);
    expect((await call('GET', `/v1/apps/${app.id}/components/nope/builds`)).status).toBe(404);
    expect((await call('GET', '/v1/builds/build_nope')).status).toBe(404);
    const bad = await call('POST', `/v1/apps/${app.id}/components/web/builds`, {
      body: { ref: 7, branch: 'x' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((detail: { path: string }) => detail.path).sort()).toEqual([
      'body.branch',
      'body.ref',
    ]);
  });
});

describe('install access template', () => {
  it("answers the install's CloudFormation template, trusting only the tenant's roles with its ExternalId", async () => {
    const { call } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    const install = (
      await call('POST', `/v1/apps/${app.id}/installs`, {
        body: { accountId: '111122223333', region: 'eu-west-1' },
      })
    ).body;
    const response = await call('GET', `/v1/installs/${install.id}/access-template`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      roleArn: `arn:aws:iam::111122223333:role/ferry.acme.${install.id}`,
      parameters: {
        ExternalId: install.externalId,
        InstallId: install.id,
        TrustedRoleArns: 'arn:aws:iam::123456789012:role/acme-sync',
      },
      quickCreateUrl: expect.stringContaining(
        'https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate',
      ),
    });
    expect(response.body.template.Parameters.ExternalId.Default).toBe(install.externalId);
    expect((await call('GET', '/v1/installs/inst_nope/access-template')).status).toBe(404);
  });
});

describe('deployed components', () => {
  it('shows what is deployed in an install, sensitive output values never included', async () => {
    const { call, deployments } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    const install = (
      await call('POST', `/v1/apps/${app.id}/installs`, {
        body: { accountId: '111122223333', region: 'eu-west-1' },
      })
    ).body;
    expect((await call('GET', `/v1/installs/${install.id}/components`)).body).toEqual({ items: [] });
    await deployments.record(
      install.id,
      app.id,
      'db',
      {
        status: 'deployed',
        buildId: 'build_1',
        digest: `sha256:${'a'.repeat(64)}`,
        outputs: { endpoint: 'db.internal', password: 'hunter2' },
        sensitiveOutputs: ['password'],
        releaseId: 'rel_1',
      },
      'workflow:deploy-install',
    );
    const listed = await call('GET', `/v1/installs/${install.id}/components`);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([
      expect.objectContaining({
        component: 'db',
        status: 'deployed',
        outputs: { endpoint: 'db.internal' },
        sensitiveOutputs: ['password'],
      }),
    ]);
    expect(listed.raw).not.toContain('hunter2');
    expect((await call('GET', '/v1/installs/inst_nope/components')).status).toBe(404);
  });
});

describe('verifying access', () => {
  it("records connected when the install's role can be assumed, and access-denied with the cause when not", async () => {
    const { call, installAccess } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    const install = (
      await call('POST', `/v1/apps/${app.id}/installs`, {
        body: { accountId: '111122223333', region: 'eu-west-1' },
      })
    ).body;
    const connected = await call('POST', `/v1/installs/${install.id}/verify`);
    expect(connected.status).toBe(200);
    expect(connected.body).toMatchObject({
      status: 'connected',
      version: 2,
      access: { roleArn: expect.stringContaining('111122223333') },
    });
    expect(connected.body.access.cause).toBeUndefined();

    installAccess.denied.add(install.id);
    const denied = await call('POST', `/v1/installs/${install.id}/verify`);
    expect(denied.body).toMatchObject({
      status: 'access-denied',
      access: { cause: expect.stringMatching(/cannot assume .* denied/) },
    });
    const history = await call('GET', `/v1/installs/${install.id}/events`);
    expect(history.body.items.map((event: { type: string }) => event.type)).toEqual([
      'install.access-denied',
      'install.connected',
      'install.created',
    ]);
    expect(installAccess.sessions.map((session) => session.sessionName)).toEqual([
      `ferry-verify-${install.id}`,
      `ferry-verify-${install.id}`,
    ]);
    expect((await call('POST', '/v1/installs/inst_nope/verify')).status).toBe(404);
  });
});

describe('bad input', () => {
  it.each([
    ['malformed JSON', { rawBody: '{"name": ' }, 400, 'MalformedJson'],
    ['a wrong type', { body: { name: 42 } }, 400, 'ValidationFailed'],
    ['an unknown field', { body: { name: 'shop', owner: 'me' } }, 400, 'ValidationFailed'],
    ['a name outside the alphabet', { body: { name: 'Shop!' } }, 400, 'ValidationFailed'],
    [
      'an oversize body',
      { body: { name: 'shop', description: 'x'.repeat(1100 * 1024) } },
      413,
      'PayloadTooLarge',
    ],
    [
      'a body that is not JSON',
      { rawBody: 'name=shop', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
      415,
      'UnsupportedMediaType',
    ],
    ['no body', {}, 400, 'ValidationFailed'],
    [
      'a duplicate input name',
      { body: { name: 'shop', inputs: [{ name: 'a' }, { name: 'a' }] } },
      400,
      'ValidationFailed',
    ],
    [
      'a sensitive input with a default',
      { body: { name: 'shop', inputs: [{ name: 'a', sensitive: true, default: 'x' }] } },
      400,
      'ValidationFailed',
    ],
  ])('refuses %s with a 4xx naming the field and writes nothing', async (_name, options, status, code) => {
    const { call, items } = await freshApi();
    const refused = await call('POST', '/v1/apps', options);
    expect(refused.status).toBe(status);
    expect(refused.body.error.code).toBe(code);
    expect(refused.body.error.details.length).toBeGreaterThan(0);
    for (const detail of refused.body.error.details) expect(detail.path).toMatch(/^(body|header)/);
    expect(await items()).toEqual([]);
  });

  it('names every wrong field at once', async () => {
    const { call } = await freshApi();
    const refused = await call('POST', '/v1/apps', {
      body: { name: 'Bad Name', inputs: [{ name: '1x', required: 'yes' }], extra: 1 },
    });
    expect(refused.body.error.details.map((detail: { path: string }) => detail.path).sort()).toEqual([
      'body.extra',
      'body.inputs[0].name',
      'body.inputs[0].required',
      'body.name',
    ]);
  });
});

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document describing exactly the routes served', async () => {
    const { call } = await freshApi();
    const response = await call('GET', '/v1/openapi.json');
    expect(response.status).toBe(200);
    const document = response.body;
    expect(document.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(document));

    const documented = Object.entries(document.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const served = [...ROUTES.map((route) => `${route.method} ${route.path}`), 'GET /v1/openapi.json'].sort();
    expect(documented).toEqual(served);
    // Every documented route answers something other than "no route".
    for (const route of ROUTES) {
      const result = await call(
        route.method,
        route.path.replace(/\{\w+\}/g, 'x'),
        route.body ? { body: {} } : {},
      );
      expect(result.body?.error?.message ?? '').not.toMatch(/^no route/);
    }
  });

  it('describes request bodies with the schemas that validate them', async () => {
    const { call } = await freshApi();
    const document = (await call('GET', '/v1/openapi.json')).body;
    const createApp = document.paths['/v1/apps'].post;
    expect(createApp.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/CreateAppRequest',
    });
    const schema = document.components.schemas.CreateAppRequest;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['name']);
    expect(
      document.components.schemas.ComponentSpec.oneOf ?? document.components.schemas.ComponentSpec.anyOf,
    ).toHaveLength(5);
  });

  it('starts a teardown of an install (202), and refuses an install that does not exist', async () => {
    const { call, teardownStarter } = await freshApi();
    const app = (await call('POST', '/v1/apps', { body: { name: 'shop' } })).body;
    const install = (
      await call('POST', `/v1/apps/${app.id}/installs`, {
        body: { accountId: '111122223333', region: 'eu-west-1' },
      })
    ).body;
    const started = await call('DELETE', `/v1/installs/${install.id}`);
    expect(started.status).toBe(202);
    expect(started.body).toEqual({ installId: install.id, teardownId: expect.stringMatching(/^teardown-/) });
    expect(teardownStarter.started).toEqual([started.body]);
    const missing = await call('DELETE', '/v1/installs/inst_nope');
    expect(missing.status).toBe(404);
    expect(teardownStarter.started).toHaveLength(1);
  });
});
