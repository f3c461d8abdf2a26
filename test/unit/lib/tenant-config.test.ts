import { ConfigError, tenantConfigFromContext, validateTenantName } from '../../../lib/tenant-config';

const contextOf = (values: Record<string, unknown>) => (key: string) => values[key];

describe('tenant configuration', () => {
  it('reads one tenant', () => {
    expect(tenantConfigFromContext(contextOf({ tenant: 'acme' }), {})).toEqual({
      tenants: ['acme'],
      env: { account: undefined, region: undefined },
    });
  });

  it('reads several tenants in order', () => {
    expect(tenantConfigFromContext(contextOf({ tenants: 'acme, globex,initech' }), {}).tenants).toEqual([
      'acme',
      'globex',
      'initech',
    ]);
  });

  it('takes account and region from context before the CDK environment variables', () => {
    const config = tenantConfigFromContext(
      contextOf({ tenant: 'acme', account: '111111111111', region: 'eu-west-1' }),
      {
        CDK_DEFAULT_ACCOUNT: '222222222222',
        CDK_DEFAULT_REGION: 'us-east-1',
      },
    );
    expect(config.env).toEqual({ account: '111111111111', region: 'eu-west-1' });
    expect(
      tenantConfigFromContext(contextOf({ tenant: 'acme' }), {
        CDK_DEFAULT_ACCOUNT: '222222222222',
        CDK_DEFAULT_REGION: 'us-east-1',
      }).env,
    ).toEqual({ account: '222222222222', region: 'us-east-1' });
  });

  it.each([
    [{}, /no tenant given/],
    [{ tenant: '' }, /'' is not a valid tenant name/],
    [{ tenant: 'Acme' }, /'Acme' is not a valid tenant name/],
    [{ tenant: '9lives' }, /not a valid tenant name/],
    [{ tenant: 'acme-' }, /not a valid tenant name/],
    [{ tenant: 'ac--me' }, /not a valid tenant name/],
    [{ tenant: 'a'.repeat(21) }, /not a valid tenant name/],
    [{ tenant: 42 }, /context 'tenant' must be a string/],
    [{ tenant: 'acme', tenants: 'a,b' }, /either/],
    [{ tenants: 'acme,,b' }, /'tenants' item 2: '' is not a valid tenant name/],
    [{ tenants: 'acme,acme' }, /'acme' is listed twice/],
    [{ tenant: 'acme', account: '1234' }, /'1234' is not a 12-digit AWS account id/],
    [{ tenant: 'acme', region: 'mars-1' }, /'mars-1' is not an AWS region name/],
    [{ tenant: 'acme', account: '123456789012' }, /without a region/],
  ])('refuses %j with a clear error', (context, message) => {
    const read = () => tenantConfigFromContext(contextOf(context), {});
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(message);
  });

  it('accepts the longest and shortest names', () => {
    expect(validateTenantName('a')).toBe('a');
    expect(validateTenantName(`a${'-b'.repeat(9)}c`)).toBe(`a${'-b'.repeat(9)}c`);
  });
});
