import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { InstallAccessStack } from './install-access-stack';

export interface AccessTemplateOptions {
  /** The tenant whose installs the template grants access to. */
  readonly tenant: string;
}

/**
 * Synthesizes the install access template (InstallAccessStack) for a tenant in an app of its own,
 * without an environment, and returns the CloudFormation template as JSON. The template has one
 * parameter per install-specific value; lambda/installs/access-template.ts fills them per install.
 */
export function synthesizeAccessTemplate(options: AccessTemplateOptions): Record<string, unknown> {
  // An output folder of its own: never the tenant app's cdk.out, whose manifest lists deployable stacks.
  const outdir = mkdtempSync(join(tmpdir(), 'ferry-access-template-'));
  try {
    const app = new App({ analyticsReporting: false, outdir });
    const stack = new InstallAccessStack(app, `FerryAccess-${options.tenant}`, { tenant: options.tenant });
    return Template.fromStack(stack).toJSON();
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
