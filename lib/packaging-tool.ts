import { join } from 'node:path';
import { Aws, BundlingOutput, DockerImage } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import { bundlePackagingTool, PACKAGING_TOOL_FILE } from '../tools/bundle';

/**
 * The packaging tool (tools/ferry-package.ts: Helm and Terraform artifacts, image copies) as an S3
 * asset bundled by local esbuild, readable by `role` (exactly its object, not the asset bucket).
 * The build agent and the deploy runner each add it; same source, same bundle, so one object.
 * Answers its `s3://` URI.
 */
export function addPackagingTool(scope: Construct, role: iam.IRole): string {
  const tools = new s3assets.Asset(scope, 'PackagingTool', {
    path: join(__dirname, '..', 'tools'),
    bundling: {
      image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:22'),
      outputType: BundlingOutput.SINGLE_FILE,
      local: {
        tryBundle(outputDir: string) {
          bundlePackagingTool(join(outputDir, PACKAGING_TOOL_FILE));
          return true;
        },
      },
    },
  });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ReadPackagingTool',
      actions: ['s3:GetObject'],
      resources: [`arn:${Aws.PARTITION}:s3:::${tools.s3BucketName}/${tools.s3ObjectKey}`],
    }),
  );
  return tools.s3ObjectUrl;
}
