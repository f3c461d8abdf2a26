import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import {
  KmsSealer,
  LocalSealer,
  loadOrCreateLocalKey,
  MAX_SECRET_BYTES,
  SealError,
} from '../../../lambda/domain/secrets';

const context = { installId: 'inst_1', input: 'db_password' };

/** The error a promise rejects with, so a test can check both its type and its message. */
async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('LocalSealer', () => {
  const sealer = new LocalSealer(Buffer.alloc(32, 7));

  it('round-trips a secret bound to its context', async () => {
    const sealed = await sealer.seal('hunter2', context);

    expect(sealed).toMatch(/^local:[A-Za-z0-9+/]+=*$/);
    expect(sealed).not.toContain('hunter2');
    expect(await sealer.unseal(sealed, context)).toBe('hunter2');
  });

  it('seals the same secret differently each time (random IV)', async () => {
    expect(await sealer.seal('hunter2', context)).not.toBe(await sealer.seal('hunter2', context));
  });

  it('reads the context regardless of key order', async () => {
    const sealed = await sealer.seal('hunter2', { input: 'db_password', installId: 'inst_1' });

    expect(await sealer.unseal(sealed, context)).toBe('hunter2');
  });

  it('refuses to open a value under another context', async () => {
    const sealed = await sealer.seal('hunter2', context);

    await expect(sealer.unseal(sealed, { ...context, installId: 'inst_2' })).rejects.toThrow(SealError);
    await expect(sealer.unseal(sealed, { ...context, input: 'api_token' })).rejects.toThrow(SealError);
  });

  it('refuses a tampered value', async () => {
    const sealed = await sealer.seal('hunter2', context);
    const bytes = Buffer.from(sealed.slice('local:'.length), 'base64');
    bytes[bytes.length - 1] ^= 1;

    await expect(sealer.unseal(`local:${bytes.toString('base64')}`, context)).rejects.toThrow(SealError);
    await expect(sealer.unseal('local:AAAA', context)).rejects.toThrow(/truncated/);
  });

  it('refuses a value sealed under another scheme', async () => {
    const sealed = await sealer.seal('hunter2', context);

    await expect(sealer.unseal(sealed.replace(/^local:/, 'kms:'), context)).rejects.toThrow(/scheme 'local'/);
    await expect(sealer.unseal('hunter2', context)).rejects.toThrow(SealError);
  });

  it('refuses to open a value with another key', async () => {
    const sealed = await sealer.seal('hunter2', context);

    await expect(new LocalSealer(Buffer.alloc(32, 8)).unseal(sealed, context)).rejects.toThrow(SealError);
  });

  it('accepts a key of 32 bytes only', () => {
    expect(() => new LocalSealer(Buffer.alloc(16))).toThrow(/32 bytes, got 16/);
    expect(() => new LocalSealer(Buffer.alloc(33))).toThrow(SealError);
  });

  it('seals up to 4096 bytes and names the size of a larger secret without echoing it', async () => {
    const largest = 'x'.repeat(MAX_SECRET_BYTES);
    expect(await sealer.unseal(await sealer.seal(largest, context), context)).toBe(largest);

    const error = await failureOf(sealer.seal(`secret-${'y'.repeat(MAX_SECRET_BYTES)}`, context));
    expect(error).toBeInstanceOf(SealError);
    expect(error.message).toMatch(/at most 4096 bytes; this one is 4103/);
    expect(error.message).not.toContain('secret-');
  });

  it('counts bytes, not characters', async () => {
    await expect(sealer.seal('é'.repeat(2049), context)).rejects.toThrow(/this one is 4098/);
  });
});

describe('loadOrCreateLocalKey', () => {
  it('creates a 32-byte key readable by its owner only, then reuses it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ferry-key-')), 'data');

    const key = loadOrCreateLocalKey(dir);

    expect(key).toHaveLength(32);
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['secret.key']);
    expect(loadOrCreateLocalKey(dir)).toEqual(key);
    expect(readFileSync(join(dir, 'secret.key'))).toEqual(key);
  });

  it('refuses a key file of the wrong size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-key-'));
    writeFileSync(join(dir, 'secret.key'), Buffer.alloc(5));

    expect(() => loadOrCreateLocalKey(dir)).toThrow(/must hold 32 bytes, it holds 5/);
  });
});

describe('KmsSealer', () => {
  const kms = mockClient(KMSClient);
  const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/tenant';
  const sealer = new KmsSealer(new KMSClient({}), keyArn);
  beforeEach(() => kms.reset());

  it('encrypts with the tenant key, the plaintext bytes and the context, keys sorted', async () => {
    kms.on(EncryptCommand).resolves({ CiphertextBlob: Buffer.from('cipher') });

    const sealed = await sealer.seal('hunter2', { input: 'db_password', installId: 'inst_1' });

    expect(sealed).toBe(`kms:${Buffer.from('cipher').toString('base64')}`);
    const input = kms.commandCalls(EncryptCommand)[0].args[0].input;
    expect(input.KeyId).toBe(keyArn);
    expect(Buffer.from(input.Plaintext as Uint8Array).toString('utf8')).toBe('hunter2');
    expect(input.EncryptionContext).toEqual(context);
    expect(Object.keys(input.EncryptionContext ?? {})).toEqual(['input', 'installId']);
  });

  it('decrypts with the ciphertext, the tenant key and the same context', async () => {
    kms.on(DecryptCommand).resolves({ Plaintext: Buffer.from('hunter2') });

    const plaintext = await sealer.unseal(`kms:${Buffer.from('cipher').toString('base64')}`, context);

    expect(plaintext).toBe('hunter2');
    const input = kms.commandCalls(DecryptCommand)[0].args[0].input;
    expect(input).toMatchObject({ KeyId: keyArn, EncryptionContext: context });
    expect(Buffer.from(input.CiphertextBlob as Uint8Array).toString('utf8')).toBe('cipher');
  });

  it('turns a KMS Encrypt error into a SealError that never holds the plaintext', async () => {
    kms
      .on(EncryptCommand)
      .rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));

    const error = await failureOf(sealer.seal('hunter2', context));

    expect(error).toBeInstanceOf(SealError);
    expect(error.message).toContain(keyArn);
    expect(error.message).toContain('AccessDeniedException');
    expect(error.message).not.toContain('hunter2');
  });

  it('turns a KMS Decrypt error (wrong context or tampering) into a SealError', async () => {
    kms.on(DecryptCommand).rejects(Object.assign(new Error(''), { name: 'InvalidCiphertextException' }));

    const error = await failureOf(sealer.unseal('kms:Y2lwaGVy', { ...context, installId: 'inst_2' }));

    expect(error).toBeInstanceOf(SealError);
    expect(error.message).toContain('InvalidCiphertextException');
  });

  it('refuses a value of another scheme and an oversized secret without calling KMS', async () => {
    await expect(sealer.unseal('local:Y2lwaGVy', context)).rejects.toThrow(/scheme 'kms'/);
    await expect(sealer.seal('x'.repeat(MAX_SECRET_BYTES + 1), context)).rejects.toThrow(/4097/);
    expect(kms.calls()).toHaveLength(0);
  });
});
