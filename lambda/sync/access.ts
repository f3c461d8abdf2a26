/**
 * Reaching an install's account: assume the role its customer granted (with the install's
 * ExternalId and a session named after the release), then its registry. Credentials live only in
 * the memory of the task that assumed them: never in workflow state, logs or the database.
 */
import {
  CreateRepositoryCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  RepositoryAlreadyExistsException,
} from '@aws-sdk/client-ecr';
import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from '@aws-sdk/client-sts';
import { RegistryClient } from '../oci/client';
import { installRoleArn } from '../shared/install-role';
import { createRepositoryInput } from '../shared/registry-settings';

export interface InstallTarget {
  readonly id: string;
  readonly accountId: string;
  readonly region: string;
  readonly externalId: string;
}

/** An install's registry, reached through its role. */
export interface InstallRegistry {
  readonly client: RegistryClient;
  /** host[:port], as image references name it. */
  readonly host: string;
  /** Creates a repository (immutable tags, scan on push, encryption) unless it exists. */
  ensureRepository(name: string): Promise<void>;
}

export interface InstallAccess {
  openRegistry(install: InstallTarget, sessionName: string): Promise<InstallRegistry>;
  /** Assumes the install's role and says which it is; throws AccessDeniedError with the cause. */
  verify(install: InstallTarget, sessionName: string): Promise<{ roleArn: string }>;
}

/** The role could not be assumed: the customer's stack is missing, changed, or trusts someone else. */
export class AccessDeniedError extends Error {
  override readonly name = 'AccessDeniedError';
}

/** Decodes an ECR authorization token (`base64(AWS:password)`) into registry credentials. */
export function ecrCredentials(token: string): { username: string; password: string } {
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw new Error('ECR returned an authorization token that is not user:password');
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A registry client for an ECR registry, logged in with whatever credentials `ecr` holds. */
export async function ecrRegistry(ecr: ECRClient, host: string): Promise<RegistryClient> {
  const token = await ecr.send(new GetAuthorizationTokenCommand({}));
  const data = token.authorizationData?.[0]?.authorizationToken;
  if (!data) throw new Error(`ECR returned no authorization token for ${host}`);
  return new RegistryClient({ registry: host, credentials: ecrCredentials(data) });
}

export interface AwsInstallAccessOptions {
  readonly sts: STSClient;
  /** The tenant whose install roles these are. */
  readonly tenant: string;
  /** @default 'aws' */
  readonly partition?: string;
  /** How long assumed sessions last. @default 900 (the minimum) */
  readonly sessionSeconds?: number;
}

export class AwsInstallAccess implements InstallAccess {
  constructor(private readonly options: AwsInstallAccessOptions) {}

  roleArnOf(install: InstallTarget): string {
    return installRoleArn(install.accountId, this.options.tenant, install.id, this.options.partition);
  }

  async verify(install: InstallTarget, sessionName: string): Promise<{ roleArn: string }> {
    await this.assume(install, sessionName);
    return { roleArn: this.roleArnOf(install) };
  }

  /** Credentials of the install's role, for an AWS SDK client of this task only. */
  async credentialsFor(
    install: InstallTarget,
    sessionName: string,
  ): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> {
    const credentials = await this.assume(install, sessionName);
    return {
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.SessionToken,
    };
  }

  async openRegistry(install: InstallTarget, sessionName: string): Promise<InstallRegistry> {
    const ecr = new ECRClient({
      region: install.region,
      credentials: await this.credentialsFor(install, sessionName),
    });
    const host = `${install.accountId}.dkr.ecr.${install.region}.amazonaws.com${install.region.startsWith('cn-') ? '.cn' : ''}`;
    const client = await ecrRegistry(ecr, host);
    return {
      client,
      host,
      async ensureRepository(name: string) {
        try {
          await ecr.send(new CreateRepositoryCommand(createRepositoryInput(name)));
        } catch (error) {
          if (!(error instanceof RepositoryAlreadyExistsException)) throw error;
        }
      },
    };
  }

  /** Assumes the install's role; the credentials stay in this task's memory. */
  private async assume(
    install: InstallTarget,
    sessionName: string,
  ): Promise<{ AccessKeyId: string; SecretAccessKey: string; SessionToken?: string }> {
    const roleArn = this.roleArnOf(install);
    let assumed: AssumeRoleCommandOutput;
    try {
      assumed = await this.options.sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          ExternalId: install.externalId,
          RoleSessionName: sessionName,
          DurationSeconds: this.options.sessionSeconds ?? 900,
        }),
      );
    } catch (error) {
      const failure = error as Error;
      throw new AccessDeniedError(
        `cannot assume ${roleArn} for install ${install.id} (account ${install.accountId}, ${install.region}): ${failure.name}: ${failure.message}`,
      );
    }
    const credentials = assumed.Credentials;
    if (!credentials?.AccessKeyId || !credentials.SecretAccessKey) {
      throw new AccessDeniedError(`STS returned no credentials for ${roleArn}`);
    }
    return {
      AccessKeyId: credentials.AccessKeyId,
      SecretAccessKey: credentials.SecretAccessKey,
      SessionToken: credentials.SessionToken,
    };
  }
}
