/**
 * Sealing sensitive install inputs: they are stored only encrypted with the tenant's key, and the
 * API never decrypts them (deploy workflows do). Error messages never include a plaintext.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';

/** Bound to the ciphertext (KMS EncryptionContext, AES-GCM additional data): e.g. { installId, input }. */
export interface SealContext {
  readonly [key: string]: string;
}

export interface SecretSealer {
  /** Encrypts; returns an opaque `<scheme>:<base64>` string safe to store. */
  seal(plaintext: string, context: SealContext): Promise<string>;
  /** Decrypts what seal returned, with the same context; throws SealError on a wrong context or tampering. */
  unseal(sealed: string, context: SealContext): Promise<string>;
}

export class SealError extends Error {
  override readonly name = 'SealError';
}

/** KMS encrypts at most 4 KiB directly. */
export const MAX_SECRET_BYTES = 4096;

function sortedContext(context: SealContext): Record<string, string> {
  return Object.fromEntries(
    Object.keys(context)
      .sort()
      .map((key) => [key, context[key]]),
  );
}

function checkSize(plaintext: string): Buffer {
  const bytes = Buffer.from(plaintext, 'utf8');
  if (bytes.length > MAX_SECRET_BYTES) {
    throw new SealError(`a secret may be at most ${MAX_SECRET_BYTES} bytes; this one is ${bytes.length}`);
  }
  return bytes;
}

/** What went wrong in a KMS call: the error's name and message (KMS never echoes a plaintext). */
function reason(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function payloadOf(sealed: string, scheme: string): Buffer {
  const prefix = `${scheme}:`;
  if (!sealed.startsWith(prefix)) throw new SealError(`sealed value is not of scheme '${scheme}'`);
  return Buffer.from(sealed.slice(prefix.length), 'base64');
}

/** AWS: KMS Encrypt/Decrypt with the tenant key; the context is the KMS EncryptionContext. */
export class KmsSealer implements SecretSealer {
  constructor(
    private readonly client: KMSClient,
    private readonly keyArn: string,
  ) {}

  async seal(plaintext: string, context: SealContext): Promise<string> {
    const bytes = checkSize(plaintext);
    try {
      const result = await this.client.send(
        new EncryptCommand({
          KeyId: this.keyArn,
          Plaintext: bytes,
          EncryptionContext: sortedContext(context),
        }),
      );
      if (!result.CiphertextBlob) throw new Error('KMS returned no ciphertext');
      return `kms:${Buffer.from(result.CiphertextBlob).toString('base64')}`;
    } catch (error) {
      throw new SealError(`cannot encrypt with ${this.keyArn}: ${reason(error)}`);
    }
  }

  async unseal(sealed: string, context: SealContext): Promise<string> {
    const blob = payloadOf(sealed, 'kms');
    try {
      const result = await this.client.send(
        new DecryptCommand({
          KeyId: this.keyArn,
          CiphertextBlob: blob,
          EncryptionContext: sortedContext(context),
        }),
      );
      if (!result.Plaintext) throw new Error('KMS returned no plaintext');
      return Buffer.from(result.Plaintext).toString('utf8');
    } catch (error) {
      throw new SealError(`cannot decrypt with ${this.keyArn}: ${reason(error)}`);
    }
  }
}

/** Local mode: AES-256-GCM with a 32-byte key; the context is the additional authenticated data. */
export class LocalSealer implements SecretSealer {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new SealError(`a local sealing key must be 32 bytes, got ${key.length}`);
  }

  async seal(plaintext: string, context: SealContext): Promise<string> {
    const bytes = checkSize(plaintext);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(JSON.stringify(sortedContext(context))));
    const ciphertext = Buffer.concat([cipher.update(bytes), cipher.final()]);
    return `local:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
  }

  async unseal(sealed: string, context: SealContext): Promise<string> {
    const payload = payloadOf(sealed, 'local');
    if (payload.length < 28) throw new SealError('sealed value is truncated');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, payload.subarray(0, 12));
      decipher.setAAD(Buffer.from(JSON.stringify(sortedContext(context))));
      decipher.setAuthTag(payload.subarray(12, 28));
      return Buffer.concat([decipher.update(payload.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealError(
        'sealed value does not open with this key and context (tampered, or another install or input)',
      );
    }
  }
}

/**
 * Local mode's key: `<dir>/secret.key`, 32 random bytes, readable by its owner only; made on first use.
 * The key is written in full under a draft name and then linked into place, so two processes starting
 * at once agree on one key and neither reads a half-written file.
 */
export function loadOrCreateLocalKey(dir: string): Buffer {
  const file = join(dir, 'secret.key');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const draft = `${file}.${process.pid}.draft`;
    writeFileSync(draft, randomBytes(32), { mode: 0o600 });
    try {
      linkSync(draft, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      rmSync(draft, { force: true });
    }
  }
  chmodSync(file, 0o600);
  const key = readFileSync(file);
  if (key.length !== 32) throw new SealError(`${file} must hold 32 bytes, it holds ${key.length}`);
  return key;
}
