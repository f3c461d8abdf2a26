/**
 * Bundles the packaging tool (tools/ferry-package.ts) into one CommonJS file that runs on plain
 * Node.js: CodeBuild downloads it from the CDK asset, local mode runs it from its data directory.
 */

import { join } from 'node:path';
import { buildSync } from 'esbuild';

export const PACKAGING_TOOL_ENTRY = join(__dirname, 'ferry-package.ts');
export const PACKAGING_TOOL_FILE = 'ferry-package.cjs';

export function bundlePackagingTool(outfile: string): void {
  buildSync({
    entryPoints: [PACKAGING_TOOL_ENTRY],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'error',
  });
}
