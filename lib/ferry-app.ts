import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { stackNameFor, type TenantConfig } from './tenant-config';
import { TenantStack, type TenantStackProps } from './tenant-stack';

export interface FerryApp {
  readonly app: App;
  readonly stacks: readonly TenantStack[];
}

/** Builds the CDK app: one TenantStack per tenant, AwsSolutions checks on every synth. */
export function buildFerryApp(
  app: App,
  config: TenantConfig,
  stackProps: Partial<Omit<TenantStackProps, 'tenant' | 'env'>> = {},
): FerryApp {
  const stacks = config.tenants.map(
    (tenant) =>
      new TenantStack(app, stackNameFor(tenant), {
        ...stackProps,
        tenant,
        env: { account: config.env.account, region: config.env.region },
        description: `Ferry infrastructure management server for tenant ${tenant}`,
      }),
  );
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stacks };
}
