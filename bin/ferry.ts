#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { buildFerryApp } from '../lib/ferry-app';
import { ConfigError, tenantConfigFromContext } from '../lib/tenant-config';

const app = new App();
try {
  buildFerryApp(
    app,
    tenantConfigFromContext((key) => app.node.tryGetContext(key), process.env),
  );
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`ferry: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
