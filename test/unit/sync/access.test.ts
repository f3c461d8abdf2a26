import {
  CreateRepositoryCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  RepositoryAlreadyExistsException,
} from '@aws-sdk/client-ecr';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { sessionNameFor } from '../../../lambda/shared/install-role';
import { AccessDeniedError, AwsInstallAccess, ecrCredentials } from '../../../lambda/sync/access';

const install = {
  id: 'inst_01abc',
  accountId: '111122223333',
  region: 'eu-west-1',
  externalId: 'ext-secret-id',
};

describe('reaching an install through its role', () => {
  const sts = mockClient(STSClient);
  const ecr = mockClient(ECRClient);
  beforeEach(() => {
    sts.reset();
    ecr.reset();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIA-ASSUMED',
        SecretAccessKey: 'assumed-secret',
        SessionToken: 'token',
        Expiration: new Date(),
      },
    });
    ecr.on(GetAuthorizationTokenCommand).resolves({
      authorizationData: [{ authorizationToken: Buffer.from('AWS:ecr-password').toString('base64') }],
    });
  });

  it("assumes the install's role with its ExternalId and a session named after the release", async () => {
    const access = new AwsInstallAccess({ sts: new STSClient({}), tenant: 'acme' });
    const registry = await access.openRegistry(install, sessionNameFor('rel_01xyz'));
    expect(sts.commandCalls(AssumeRoleCommand)[0].args[0].input).toEqual({
      RoleArn: 'arn:aws:iam::111122223333:role/ferry.acme.inst_01abc',
      ExternalId: 'ext-secret-id',
      RoleSessionName: 'ferry-rel_01xyz',
      DurationSeconds: 900,
    });
    expect(registry.host).toBe('111122223333.dkr.ecr.eu-west-1.amazonaws.com');
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);
    // The install's registry is reached with the assumed credentials, in the install's region.
    const ecrConfig = ecr.commandCalls(GetAuthorizationTokenCommand)[0].thisValue as unknown as ECRClient;
    expect(await ecrConfig.config.region()).toBe('eu-west-1');
    expect(await (ecrConfig.config.credentials as () => Promise<{ accessKeyId: string }>)()).toMatchObject({
      accessKeyId: 'ASIA-ASSUMED',
    });
  });

  it('creates the destination repository with immutable tags, scan on push and encryption, tolerating one that exists', async () => {
    const access = new AwsInstallAccess({ sts: new STSClient({}), tenant: 'acme' });
    const registry = await access.openRegistry(install, 'ferry-rel');
    ecr
      .on(CreateRepositoryCommand)
      .resolvesOnce({})
      .rejectsOnce(new RepositoryAlreadyExistsException({ message: 'exists', $metadata: {} }));
    await registry.ensureRepository('ferry/shop/web');
    await registry.ensureRepository('ferry/shop/web');
    expect(ecr.commandCalls(CreateRepositoryCommand)[0].args[0].input).toEqual({
      repositoryName: 'ferry/shop/web',
      imageTagMutability: 'IMMUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfiguration: { encryptionType: 'KMS' },
    });
  });

  it('explains a denied role with the install, account, region and cause, and never the ExternalId', async () => {
    sts.on(AssumeRoleCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: sts:AssumeRole'), {
        name: 'AccessDenied',
      }),
    );
    const access = new AwsInstallAccess({ sts: new STSClient({}), tenant: 'acme' });
    const opening = access.openRegistry(install, 'ferry-rel');
    await expect(opening).rejects.toThrow(AccessDeniedError);
    const error = (await access.openRegistry(install, 'ferry-rel').catch((e: Error) => e)) as Error;
    expect(error.message).toMatch(
      /ferry\.acme\.inst_01abc for install inst_01abc \(account 111122223333, eu-west-1\): AccessDenied/,
    );
    expect(error.message).not.toContain('ext-secret-id');
  });

  it('decodes ECR tokens and refuses malformed ones', () => {
    expect(ecrCredentials(Buffer.from('AWS:p:a:ss').toString('base64'))).toEqual({
      username: 'AWS',
      password: 'p:a:ss',
    });
    expect(() => ecrCredentials(Buffer.from('nocolon').toString('base64'))).toThrow(/not user:password/);
  });

  it('names sessions within STS limits', () => {
    expect(sessionNameFor('rel_01xyz')).toBe('ferry-rel_01xyz');
    expect(sessionNameFor('a b/c'.repeat(30))).toMatch(/^[\w+=,.@-]{2,64}$/);
  });
});
