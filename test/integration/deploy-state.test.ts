import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Deployments } from '../../lambda/domain/deployments';
import { ConflictError } from '../../lambda/domain/errors';
import { InstallLock } from '../../lambda/domain/install-lock';
import { type Item, StateStore } from '../../lambda/domain/state-store';
import { gsi1, keys } from '../../lambda/domain/store';
import { documentClient } from '../../lambda/shared/dynamo';
import { ensureStateTable, type LocalDynamoDb, startDynamoDb } from '../../local/dynamodb';

let dynamo: LocalDynamoDb;
let tables = 0;

beforeAll(async () => {
  dynamo = await startDynamoDb();
});
afterAll(async () => {
  await dynamo.stop();
});

/** A store on a fresh table whose clock the test moves. */
async function freshStore() {
  const table = `deploy-state-${process.pid}-${++tables}`;
  await ensureStateTable(new DynamoDBClient(dynamo.clientConfig), table);
  const clock = { now: new Date('2025-01-01T00:00:00.000Z') };
  const store = new StateStore({ client: documentClient(dynamo.clientConfig), table, now: () => clock.now });
  const advance = (seconds: number) => {
    clock.now = new Date(clock.now.getTime() + seconds * 1000);
  };
  return { store, advance };
}

async function lockedError(act: () => Promise<unknown>): Promise<ConflictError> {
  try {
    await act();
  } catch (error) {
    if (error instanceof ConflictError) return error;
    throw error;
  }
  throw new Error('expected a ConflictError');
}

describe('InstallLock', () => {
  it('acquires a free lock and stores its owner and expiry', async () => {
    const { store } = await freshStore();
    const lock = new InstallLock(store);

    const held = await lock.acquire('inst_1', 'release_a', 600);

    expect(held).toEqual({
      installId: 'inst_1',
      owner: 'release_a',
      acquiredAt: '2025-01-01T00:00:00.000Z',
      expiresAt: Date.parse('2025-01-01T00:10:00Z') / 1000,
    });
    expect(await lock.holder('inst_1')).toEqual(held);
  });

  it('is re-entrant for the same owner and renews the expiry', async () => {
    const { store, advance } = await freshStore();
    const lock = new InstallLock(store);
    await lock.acquire('inst_1', 'release_a', 600);
    advance(300);

    const renewed = await lock.acquire('inst_1', 'release_a', 600);

    expect(renewed.expiresAt).toBe(Date.parse('2025-01-01T00:15:00Z') / 1000);
  });

  it('refuses a second owner, naming the holder and since when', async () => {
    const { store, advance } = await freshStore();
    const lock = new InstallLock(store);
    await lock.acquire('inst_1', 'release_a', 600);
    advance(60);

    const error = await lockedError(() => lock.acquire('inst_1', 'exec_b', 600));

    expect(error.code).toBe('InstallLocked');
    expect(error.message).toContain(
      'install inst_1 is being deployed by release_a since 2025-01-01T00:00:00.000Z',
    );
    expect((await lock.holder('inst_1'))?.owner).toBe('release_a');
  });

  it('locks each install on its own', async () => {
    const { store } = await freshStore();
    const lock = new InstallLock(store);
    await lock.acquire('inst_1', 'release_a', 600);

    await expect(lock.acquire('inst_2', 'exec_b', 600)).resolves.toMatchObject({ owner: 'exec_b' });
  });

  it('lets another owner take over an expired lock', async () => {
    const { store, advance } = await freshStore();
    const lock = new InstallLock(store);
    await lock.acquire('inst_1', 'release_a', 60);
    advance(61);

    const taken = await lock.acquire('inst_1', 'exec_b', 600);

    expect(taken.owner).toBe('exec_b');
    expect(await lock.release('inst_1', 'release_a')).toBe(false);
  });

  it('releases for its owner only: a release by anyone else is a no-op', async () => {
    const { store } = await freshStore();
    const lock = new InstallLock(store);
    await lock.acquire('inst_1', 'release_a', 600);

    expect(await lock.release('inst_1', 'exec_b')).toBe(false);
    expect((await lock.holder('inst_1'))?.owner).toBe('release_a');
    expect(await lock.release('inst_1', 'release_a')).toBe(true);
    expect(await lock.holder('inst_1')).toBeUndefined();
    expect(await lock.release('inst_1', 'release_a')).toBe(false);
    await expect(lock.acquire('inst_1', 'exec_b', 600)).resolves.toMatchObject({ owner: 'exec_b' });
  });
});

describe('Deployments', () => {
  async function installEvents(store: StateStore, installId: string): Promise<Item[]> {
    const page = await store.queryPartition(
      { index: 'gsi1', partition: gsi1.eventsOfInstall(installId), newestFirst: true },
      { limit: 100 },
      (item) => item,
    );
    return page.items;
  }

  it('records a deployed component with its history event and lists it', async () => {
    const { store } = await freshStore();
    const deployments = new Deployments(store);

    const recorded = await deployments.record(
      'inst_1',
      'app_1',
      'db',
      { status: 'deployed', buildId: 'build_1', digest: 'sha256:abc', outputs: { endpoint: 'db:5432' } },
      'workflow',
    );

    expect(await deployments.list('inst_1')).toEqual([recorded]);
    expect(recorded).toMatchObject({ component: 'db', status: 'deployed', outputs: { endpoint: 'db:5432' } });
    const events = await installEvents(store, 'inst_1');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      appId: 'app_1',
      installId: 'inst_1',
      type: 'component.deployed',
      actor: 'workflow',
      data: { component: 'db', status: 'deployed', buildId: 'build_1', digest: 'sha256:abc' },
    });
  });

  it('writes nothing when its history event cannot be written', async () => {
    const { store } = await freshStore();
    // The event's put always fails its condition, so the transaction holding both is cancelled.
    const failing = Object.assign(Object.create(store) as StateStore, {
      eventPut: (event: Parameters<StateStore['eventPut']>[0]) => {
        const put = store.eventPut(event);
        return { Put: { ...put.Put!, ConditionExpression: 'attribute_exists(pk)' } };
      },
    });
    const deployments = new Deployments(failing);

    await expect(
      deployments.record('inst_1', 'app_1', 'db', { status: 'deployed' }, 'workflow'),
    ).rejects.toThrow();

    expect(await deployments.list('inst_1')).toEqual([]);
    expect(await installEvents(store, 'inst_1')).toEqual([]);
  });

  it('lists every component of an install, across pages, and only that install', async () => {
    const { store } = await freshStore();
    const deployments = new Deployments(store);
    const names = Array.from({ length: 105 }, (_, index) => `c${String(index).padStart(3, '0')}`);
    for (const name of names) {
      await deployments.record('inst_1', 'app_1', name, { status: 'skipped' }, 'workflow');
    }
    await deployments.record('inst_2', 'app_1', 'c000', { status: 'deployed' }, 'workflow');
    await new InstallLock(store).acquire('inst_1', 'release_a', 600);

    const listed = await deployments.list('inst_1');

    expect(listed.map(({ component }) => component)).toEqual(names);
  });

  it('replaces the earlier record and writes one event per outcome', async () => {
    const { store } = await freshStore();
    const deployments = new Deployments(store);
    const error = { step: 'apply', account: '111122223333', region: 'eu-west-1', cause: 'AccessDenied' };
    await deployments.record('inst_1', 'app_1', 'web', { status: 'failed', error }, 'workflow');

    await deployments.record('inst_1', 'app_1', 'web', { status: 'removed' }, 'workflow');

    expect((await deployments.list('inst_1')).map(({ status }) => status)).toEqual(['removed']);
    const events = await installEvents(store, 'inst_1');
    expect(events.map(({ type }) => type)).toEqual(['component.removed', 'component.deploy-failed']);
    expect(events[1]).toMatchObject({ data: { error } });
    expect(events[1]?.message).toContain('apply in 111122223333/eu-west-1: AccessDenied');
  });

  it('never stores a sensitive output in clear, only its name', async () => {
    const { store } = await freshStore();
    const deployments = new Deployments(store);

    await deployments.record(
      'inst_1',
      'app_1',
      'db',
      {
        status: 'deployed',
        outputs: { endpoint: 'db:5432', password: 'hunter2-secret' },
        sensitiveOutputs: ['password'],
      },
      'workflow',
    );

    const [listed] = await deployments.list('inst_1');
    expect(listed).toMatchObject({ outputs: { endpoint: 'db:5432' }, sensitiveOutputs: ['password'] });
    const item = await store.get(keys.deployedComponent('inst_1', 'db'));
    const events = await installEvents(store, 'inst_1');
    expect(events[0]).toMatchObject({ data: { outputs: { endpoint: 'db:5432', password: '(sensitive)' } } });
    expect(JSON.stringify([item, events])).not.toContain('hunter2-secret');
  });
});
