import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { KmsSealer, LocalSealer, loadOrCreateLocalKey, SealError } from '../../../lambda/domain/secrets';

const context = { installId: 'inst_1', input: 'db_password' };

describe('LocalSealer', () => {
  const sealer = new LocalSealer(Buffer.alloc(32, 7));

  it('round-trips a secret bound to its context', async () => {
    const sealed = await sealer.seal('hunter2', context);
    expect(sealed).toMatch(/^local:/);
    expect(sealed).not.toContain('hunter2');
    expect(await sealer.unseal(sealed, context)).toBe('hunter2');
  });

  it('refuses another context, a tampered value, another scheme and a wrong-size key', async () => {
    const sealed = await sealer.seal('hunter2', context);
    await expect(sealer.unseal(sealed, { ...context, installId: 'inst_2' })).rejects.toThrow(SealError);
    const bytes = Buffer.from(sealed.slice('local:'.length), 'base64');
    bytes[bytes.length - 1] ^= 1;
    await expect(sealer.unseal(`local:${bytes.toString('base64')}`, context)).rejects.toThrow(SealError);
    await expect(sealer.unseal(sealed.replace('local:', 'kms:'), context)).rejects.toThrow(/scheme 'local'/);
    expect(() => new LocalSealer(Buffer.alloc(16))).toThrow(/32 bytes/);
  });

  it('refuses a secret larger than KMS could encrypt, without echoing it', async () => {
    const big = 'x'.repeat(5000);
    await expect(sealer.seal(big, context)).rejects.toThrow(/at most 4096 bytes; this one is 5000/);
  });

  it('creates the local key once, readable by its owner only, and reuses it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-key-'));
    const key = loadOrCreateLocalKey(dir);
    expect(key).toHaveLength(32);
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateLocalKey(dir)).toEqual(key);
    expect(readFileSync(join(dir, 'secret.key'))).toEqual(key);
  });
});

describe('KmsSealer', () => {
  const kms = mockClient(KMSClient);
  const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/tenant';
  beforeEach(() => kms.reset());

  it('encrypts with the tenant key and the context, and decrypts with both', async () => {
    kms.on(EncryptCommand).resolves({ CiphertextBlob: Buffer.from('cipher') });
    kms.on(DecryptCommand).resolves({ Plaintext: Buffer.from('hunter2') });
    const sealer = new KmsSealer(new KMSClient({}), keyArn);
    const sealed = await sealer.seal('hunter2', { input: 'db_password', installId: 'inst_1' });
    expect(sealed).toBe(`kms:${Buffer.from('cipher').toString('base64')}`);
    const encrypt = kms.commandCalls(EncryptCommand)[0].args[0].input;
    expect(encrypt.KeyId).toBe(keyArn);
    expect(Buffer.from(encrypt.Plaintext as Uint8Array).toString()).toBe('hunter2');
    expect(encrypt.EncryptionContext).toEqual({ input: 'db_password', installId: 'inst_1' });

    expect(await sealer.unseal(sealed, context)).toBe('hunter2');
    const decrypt = kms.commandCalls(DecryptCommand)[0].args[0].input;
    expect(decrypt).toMatchObject({ KeyId: keyArn, EncryptionContext: context });
    expect(Buffer.from(decrypt.CiphertextBlob as Uint8Array).toString()).toBe('cipher');
  });

  it('turns a KMS error into a SealError that never holds the plaintext', async () => {
    kms
      .on(EncryptCommand)
      .rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    const sealer = new KmsSealer(new KMSClient({}), keyArn);
    const failure = sealer.seal('hunter2', context);
    await expect(failure).rejects.toThrow(SealError);
    await expect(sealer.seal('hunter2', context)).rejects.toThrow(/AccessDeniedException/);
    await expect(sealer.seal('hunter2', context)).rejects.not.toThrow(/hunter2/);
  });
});
