import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildFerryApp } from '../../lib/ferry-app';
import type { TenantEnvironment } from '../../lib/tenant-config';
import type { TenantStack } from '../../lib/tenant-stack';

export interface Synthesized {
  readonly app: App;
  readonly stacks: readonly TenantStack[];
  template(tenant: string): Template;
}

/**
 * Synthesizes the Ferry app as bin/ferry.ts does (cdk-nag included) for the given tenants.
 * Lambda bundling is skipped unless asked for: templates do not depend on bundle contents.
 */
export function synthesize(
  tenants: readonly string[],
  options: { env?: TenantEnvironment; bundle?: boolean } = {},
): Synthesized {
  const app = new App({ context: options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] } });
  const { stacks } = buildFerryApp(app, {
    tenants,
    env: options.env ?? { account: '123456789012', region: 'eu-west-1' },
  });
  const templates = new Map<string, Template>();
  return {
    app,
    stacks,
    template(tenant: string) {
      let template = templates.get(tenant);
      if (!template) {
        const stack = stacks.find((candidate) => candidate.tenant === tenant);
        if (!stack) throw new Error(`no stack for tenant ${tenant}`);
        template = Template.fromStack(stack);
        templates.set(tenant, template);
      }
      return template;
    },
  };
}
