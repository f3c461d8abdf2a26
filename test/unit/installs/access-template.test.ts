import {
  AccessTemplateError,
  type AccessTemplateRequest,
  accessStackName,
  accessTemplateFor,
} from '../../../lambda/installs/access-template';
import { synthesizeAccessTemplate } from '../../../lib/access-template';

type Parameters = Record<string, { Default?: string }>;

describe('access template for an install', () => {
  const synthesized = synthesizeAccessTemplate({ tenant: 'acme' });
  const taskRole = 'arn:aws:iam::123456789012:role/Ferry-acme-SyncStepsFunctionRole-ABC';
  const otherTaskRole = 'arn:aws:iam::123456789012:role/Ferry-acme-DeployRole-DEF';
  const request: AccessTemplateRequest = {
    tenant: 'acme',
    install: {
      id: 'inst_01jz5m3k8q2v7w9x0y1z2a3b4c',
      appName: 'shop',
      accountId: '111122223333',
      region: 'eu-west-1',
      externalId: 'Xy_9-abcDEF0123456789ghijklmnopq',
    },
    trustedRoleArns: [taskRole, otherTaskRole],
  };

  it('fills the parameter defaults with the install values', () => {
    const { template, parameters } = accessTemplateFor(synthesized, request);

    const filled = template.Parameters as Parameters;
    expect(filled.TrustedRoleArns.Default).toBe(`${taskRole},${otherTaskRole}`);
    expect(filled.ExternalId.Default).toBe(request.install.externalId);
    expect(filled.InstallId.Default).toBe(request.install.id);
    expect(filled.RepositoryPrefix.Default).toBe('ferry');
    expect(filled.PermissionsBoundaryArn.Default).toBe('');
    expect(parameters).toEqual({
      TrustedRoleArns: `${taskRole},${otherTaskRole}`,
      ExternalId: request.install.externalId,
      InstallId: request.install.id,
    });
    expect(template.Description).toContain('app shop');
    expect(template.Metadata).toMatchObject({ Ferry: { tenant: 'acme', installId: request.install.id } });
  });

  it('leaves the template it was given untouched', () => {
    const before = JSON.stringify(synthesized);

    const { template } = accessTemplateFor(synthesized, request);

    expect(JSON.stringify(synthesized)).toBe(before);
    expect(template).not.toBe(synthesized);
    expect(template.Resources).toEqual(synthesized.Resources);
    expect(template.Resources).not.toBe(synthesized.Resources);
  });

  it('names the stack ferry-<tenant>-<installId> with only letters, digits and hyphens', () => {
    const { stackName } = accessTemplateFor(synthesized, request);

    expect(stackName).toBe('ferry-acme-inst-01jz5m3k8q2v7w9x0y1z2a3b4c');
    expect(accessStackName('acme', 'Inst_ABC')).toBe('ferry-acme-inst-abc');
  });

  it('gives the ARN of the role the stack creates', () => {
    const { roleArn } = accessTemplateFor(synthesized, request);

    expect(roleArn).toBe('arn:aws:iam::111122223333:role/ferry.acme.inst_01jz5m3k8q2v7w9x0y1z2a3b4c');
  });

  it('links to quick create in the install region with the stack name and every parameter', () => {
    const { quickCreateUrl } = accessTemplateFor(synthesized, request);

    const [base, fragment] = quickCreateUrl.split('#');
    expect(base).toBe('https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1');
    expect(fragment.startsWith('/stacks/quickcreate?')).toBe(true);
    expect(fragment).not.toContain('templateURL=');
    expect(fragment).toContain('stackName=ferry-acme-inst-01jz5m3k8q2v7w9x0y1z2a3b4c');
    expect(fragment).toContain(`param_ExternalId=${request.install.externalId}`);
    expect(fragment).toContain(`param_InstallId=${request.install.id}`);
    expect(fragment).toContain(`param_TrustedRoleArns=${encodeURIComponent(`${taskRole},${otherTaskRole}`)}`);
    expect(fragment).toContain(
      'arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FFerry-acme-SyncStepsFunctionRole-ABC%2C',
    );
    const query = new URLSearchParams(fragment.slice('/stacks/quickcreate?'.length));
    expect(query.get('param_TrustedRoleArns')).toBe(`${taskRole},${otherTaskRole}`);
    expect(query.get('param_ExternalId')).toBe(request.install.externalId);
  });

  it('puts a given template URL in the link, encoded', () => {
    const templateUrl =
      'https://bucket.s3.eu-west-1.amazonaws.com/access/acme.json?X-Amz-Signature=ab%2Fc&X-Amz-Expires=3600';

    const { quickCreateUrl } = accessTemplateFor(synthesized, { ...request, templateUrl });

    expect(quickCreateUrl).toContain(`quickcreate?templateURL=${encodeURIComponent(templateUrl)}&stackName=`);
    const query = new URLSearchParams(quickCreateUrl.split('quickcreate?')[1]);
    expect(query.get('templateURL')).toBe(templateUrl);
  });

  it('uses the China console and partition for a China region', () => {
    const china = {
      ...request,
      install: { ...request.install, region: 'cn-north-1' },
      trustedRoleArns: ['arn:aws-cn:iam::123456789012:role/task'],
    };

    const { quickCreateUrl, roleArn } = accessTemplateFor(synthesized, china);

    expect(
      quickCreateUrl.startsWith(
        'https://cn-north-1.console.amazonaws.cn/cloudformation/home?region=cn-north-1#',
      ),
    ).toBe(true);
    expect(roleArn.startsWith('arn:aws-cn:iam::111122223333:role/')).toBe(true);
  });

  it('refuses a missing or empty trusted role list', () => {
    expect(() => accessTemplateFor(synthesized, { ...request, trustedRoleArns: [] })).toThrow(
      AccessTemplateError,
    );
    expect(() => accessTemplateFor(synthesized, { ...request, trustedRoleArns: [] })).toThrow(
      /trustedRoleArns/,
    );
    const missing = { ...request, trustedRoleArns: undefined } as unknown as AccessTemplateRequest;
    expect(() => accessTemplateFor(synthesized, missing)).toThrow(/trustedRoleArns is empty/);
  });

  it('refuses a trusted role that is not a role ARN, or is in another partition', () => {
    expect(() => accessTemplateFor(synthesized, { ...request, trustedRoleArns: ['*'] })).toThrow(
      /trustedRoleArns\[0\]: '\*' is not an IAM role ARN/,
    );
    expect(() =>
      accessTemplateFor(synthesized, { ...request, trustedRoleArns: ['arn:aws:iam::123456789012:root'] }),
    ).toThrow(/not an IAM role ARN/);
    expect(() =>
      accessTemplateFor(synthesized, {
        ...request,
        trustedRoleArns: ['arn:aws-cn:iam::123456789012:role/task'],
      }),
    ).toThrow(/partition aws-cn/);
  });

  it('refuses an install whose values the stack could not take', () => {
    const withInstall = (install: Partial<AccessTemplateRequest['install']>) => ({
      ...request,
      install: { ...request.install, ...install },
    });
    expect(() => accessTemplateFor(synthesized, withInstall({ externalId: 'x' }))).toThrow(/externalId/);
    expect(() => accessTemplateFor(synthesized, withInstall({ externalId: 'has space' }))).toThrow(
      /externalId/,
    );
    expect(() => accessTemplateFor(synthesized, withInstall({ accountId: '1234' }))).toThrow(/accountId/);
    expect(() => accessTemplateFor(synthesized, withInstall({ region: 'mars-1' }))).toThrow(/region/);
    expect(() => accessTemplateFor(synthesized, withInstall({ id: 'inst/1' }))).toThrow(
      /id must be a prefix/,
    );
    expect(() => accessTemplateFor(synthesized, withInstall({ id: `inst_${'i'.repeat(60)}` }))).toThrow(
      /over 64/,
    );
  });

  it('refuses a template for another tenant or without the access parameters', () => {
    expect(() => accessTemplateFor(synthesized, { ...request, tenant: 'globex' })).toThrow(
      /synthesized for tenant 'acme', not 'globex'/,
    );
    expect(() => accessTemplateFor({ Resources: {} }, request)).toThrow(
      /lacks the parameters TrustedRoleArns/,
    );
  });

  it('refuses a template URL that is not https', () => {
    expect(() =>
      accessTemplateFor(synthesized, { ...request, templateUrl: 'http://example.com/t.json' }),
    ).toThrow(/https/);
  });
});
