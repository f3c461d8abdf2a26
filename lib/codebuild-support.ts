/**
 * What the build agent and the deploy runner, both CodeBuild projects started by workflows with a
 * generated buildspec, share: the packaging tool, the grant `codebuild:startBuild.sync` needs, and
 * the acknowledgements for what CodeBuild grants a project's role by itself.
 */
import { join } from 'node:path';
import { Aws, BundlingOutput, DockerImage, Stack, Validations } from 'aws-cdk-lib';
import type * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import { bundlePackagingTool, PACKAGING_TOOL_FILE } from '../tools/bundle';
import { nagEnvOf, nagRefOf } from './nag';

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

/**
 * What Step Functions' codebuild:startBuild.sync integration needs: start, watch and stop the
 * project's builds, and the managed EventBridge rule it uses to learn when a build ends.
 */
export function grantStartBuildSync(project: codebuild.IProject, grantee: iam.IGrantable): void {
  iam.Grant.addToPrincipal({
    grantee,
    actions: ['codebuild:StartBuild', 'codebuild:StopBuild', 'codebuild:BatchGetBuilds'],
    resourceArns: [project.projectArn],
  });
  iam.Grant.addToPrincipal({
    grantee,
    actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
    resourceArns: [
      Stack.of(project).formatArn({
        service: 'events',
        resource: 'rule',
        resourceName: 'StepFunctionsGetEventsForCodeBuildStartBuildRule',
      }),
    ],
  });
}

/** The wildcards CodeBuild grants a project's role by itself: its log group and report groups. */
export function acknowledgeProjectDefaults(role: iam.IRole, project: codebuild.IProject): void {
  const projectName = nagRefOf(project);
  const { region, account } = nagEnvOf(project);
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/codebuild/${projectName}:*]`,
    reason: "CodeBuild's default log group grant, named after this project only.",
  });
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codebuild:${region}:${account}:report-group/${projectName}-*]`,
    reason: "CodeBuild's test report groups, named after this project only.",
  });
}
