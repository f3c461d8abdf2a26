/**
 * The shapes callers send, as zod schemas: the API validates requests with them and the OpenAPI
 * document is generated from them, so the two cannot drift. Objects are strict: an unknown field
 * is an error, never silently dropped.
 */
import { z } from 'zod';
import { ACCOUNT_ID, INPUT_NAME, INPUT_NAME_RULE, RESOURCE_NAME, RESOURCE_NAME_RULE } from './names';
import { isAwsRegion } from './regions';

export const ResourceName = z.string().regex(RESOURCE_NAME, { error: `must be ${RESOURCE_NAME_RULE}` });
export const InputName = z.string().regex(INPUT_NAME, { error: `must be ${INPUT_NAME_RULE}` });
const Description = z.string().max(1024);
const EnvironmentName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, {
  error: 'must be an environment variable name: letters, digits and underscores, not starting with a digit',
});
const Environment = z.record(EnvironmentName, z.string().max(4096));
/** A JSON value (Helm values, Terraform variables). */
const JsonValue: z.ZodType<unknown> = z
  .lazy(() =>
    z.union([
      z.string(),
      z.number(),
      z.boolean(),
      z.null(),
      z.array(JsonValue),
      z.record(z.string(), JsonValue),
    ]),
  )
  .meta({ id: 'JsonValue', description: 'Any JSON value.' });

function uniqueBy<T>(
  items: readonly T[],
  key: (item: T) => string,
  ctx: z.RefinementCtx,
  what: string,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const value = key(item);
    const first = seen.get(value);
    if (first === undefined) seen.set(value, index);
    else
      ctx.addIssue({
        code: 'custom',
        path: [index],
        message: `${what} '${value}' is already used at [${first}]`,
      });
  });
}

// ---- apps --------------------------------------------------------------------------------------

export const InputDefinition = z
  .strictObject({
    name: InputName,
    description: Description.optional(),
    required: z.boolean().default(false),
    default: z.string().max(4096).optional(),
    sensitive: z.boolean().default(false),
  })
  .superRefine((input, ctx) => {
    if (input.sensitive && input.default !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['default'],
        message: 'a sensitive input cannot have a default: it would be stored in clear in the app',
      });
    }
  })
  .meta({ id: 'InputDefinition', description: 'An input each install of the app gives.' });
export type InputDefinition = z.output<typeof InputDefinition>;

const InputDefinitions = z
  .array(InputDefinition)
  .max(100)
  .superRefine((inputs, ctx) => uniqueBy(inputs, (input) => input.name, ctx, 'input name'));

export const CreateAppRequest = z
  .strictObject({
    name: ResourceName.describe('Unique within the tenant.'),
    description: Description.optional(),
    inputs: InputDefinitions.default([]),
  })
  .meta({ id: 'CreateAppRequest' });
export type CreateAppRequest = z.output<typeof CreateAppRequest>;

export const UpdateAppRequest = z
  .strictObject({ description: Description.optional(), inputs: InputDefinitions.optional() })
  .refine((update) => update.description !== undefined || update.inputs !== undefined, {
    error: 'give description, inputs or both',
  })
  .meta({ id: 'UpdateAppRequest' });
export type UpdateAppRequest = z.output<typeof UpdateAppRequest>;

// ---- components --------------------------------------------------------------------------------

const IMAGE_REFERENCE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const PRIVATE_ECR_HOST = /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?\//;

export const ImageReference = z
  .string()
  .max(1024)
  .regex(IMAGE_REFERENCE, { error: 'must be an image reference such as registry.example.com/team/app:1.2.3' })
  .refine(
    (reference) =>
      /:[A-Za-z0-9_][A-Za-z0-9_.-]*$|@sha256:[a-f0-9]{64}$/.test(reference.replace(/^[^/]*\//, '')),
    {
      error:
        'must name a tag or a digest (…:1.2.3 or …@sha256:…); an implicit latest is not deployable twice the same way',
    },
  );

const RoleArn = z.string().regex(/^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, {
  error: 'must be an IAM role ARN (arn:aws:iam::123456789012:role/name)',
});

export const GitSource = z
  .strictObject({
    repo: z
      .string()
      .max(2048)
      .regex(/^(?:https:\/\/|ssh:\/\/|git@[^:]+:|file:\/\/|\/)\S+$/, {
        error: 'must be a git URL (https://, ssh://, git@host:path or file://) or an absolute local path',
      }),
    ref: z.string().min(1).max(255).default('main').describe('Branch, tag or commit.'),
    path: z
      .string()
      .max(1024)
      .refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), {
        error: "must be a relative path inside the repository (no leading '/' and no '..')",
      })
      .default('.'),
  })
  .meta({ id: 'GitSource' });

/** A string, or a number: every placement field may be a template. */
const NumberOrTemplate = z.union([z.number().int().positive(), z.string().min(1).max(256)]);

export const ContainerService = z
  .strictObject({
    cluster: z.string().min(1).max(2048),
    subnets: z.array(z.string().min(1).max(256)).min(1).max(16),
    securityGroups: z.array(z.string().min(1).max(256)).max(5).default([]),
    cpu: NumberOrTemplate.default(256).describe('CPU units (256 = 0.25 vCPU).'),
    memory: NumberOrTemplate.default(512).describe('MiB.'),
    port: z.union([z.number().int().min(1).max(65535), z.string().min(1).max(256)]).optional(),
    desiredCount: z.number().int().min(0).max(100).default(1),
    assignPublicIp: z.boolean().default(false),
    environment: Environment.default({}),
  })
  .meta({
    id: 'ContainerService',
    description: 'Where an image runs in the install: an ECS Fargate service.',
  });

const DependsOn = z
  .array(ResourceName)
  .max(50)
  .default([])
  .superRefine((names, ctx) => uniqueBy(names, (name) => name, ctx, 'dependency'))
  .describe('Components that must deploy first; template references add to these.');

export const ImageComponent = z
  .strictObject({
    type: z.literal('image'),
    image: z.strictObject({
      uri: ImageReference,
      roleArn: RoleArn.optional().describe(
        'For a private ECR image: the role the build agent assumes to pull it.',
      ),
    }),
    service: ContainerService.optional(),
    dependsOn: DependsOn,
  })
  .superRefine((component, ctx) => {
    const privateEcr = PRIVATE_ECR_HOST.test(component.image.uri);
    if (privateEcr && component.image.roleArn === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['image', 'roleArn'],
        message: 'a private ECR image needs the roleArn that can pull it',
      });
    }
    if (!privateEcr && component.image.roleArn !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['image', 'roleArn'],
        message: 'roleArn is only for private ECR images',
      });
    }
  })
  .meta({
    id: 'ImageComponent',
    description: 'A prebuilt image: public, or private ECR read through a role.',
  });

export const DockerfileComponent = z
  .strictObject({
    type: z.literal('dockerfile'),
    source: GitSource,
    dockerfile: z.string().min(1).max(1024).default('Dockerfile').describe('Relative to source.path.'),
    buildArgs: z.record(EnvironmentName, z.string().max(4096)).default({}),
    target: z.string().min(1).max(128).optional(),
    service: ContainerService.optional(),
    dependsOn: DependsOn,
  })
  .meta({ id: 'DockerfileComponent', description: 'A git repository built into an image.' });

const KubernetesName = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,51}[a-z0-9])?$/, {
  error: 'must be a Kubernetes name: up to 53 of a-z, 0-9 and hyphens, starting and ending alphanumeric',
});

export const HelmComponent = z
  .strictObject({
    type: z.literal('helm'),
    chart: z.discriminatedUnion('kind', [
      z
        .strictObject({
          kind: z.literal('prebuilt'),
          repo: z
            .string()
            .regex(/^(?:https|oci):\/\/\S+$/, { error: 'must be an https:// or oci:// chart repository' }),
          name: z.string().min(1).max(253),
          version: z.string().min(1).max(128),
        })
        .meta({ id: 'PrebuiltChart', description: 'Deployed from its repository; never synced.' }),
      z.strictObject({ kind: z.literal('source'), source: GitSource }).meta({
        id: 'SourceChart',
        description: 'Packaged into the tenant registry and synced to each install.',
      }),
    ]),
    values: z.record(z.string(), JsonValue).default({}),
    valuesFiles: z.array(z.string().min(1).max(1024)).max(20).default([]),
    namespace: KubernetesName.default('default'),
    releaseName: KubernetesName.optional().describe('Defaults to the component name.'),
    cluster: z
      .string()
      .min(1)
      .max(2048)
      .optional()
      .describe("The install's EKS cluster; a template is typical."),
    dependsOn: DependsOn,
  })
  .meta({ id: 'HelmComponent', description: 'A Helm chart: prebuilt by URL, or a source chart from git.' });

export const TerraformComponent = z
  .strictObject({
    type: z.literal('terraform'),
    source: GitSource,
    terraformVersion: z
      .string()
      .regex(/^\d+\.\d+\.\d+$/, { error: 'must be an exact version such as 1.9.8' }),
    variables: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/), JsonValue).default({}),
    environment: Environment.default({}),
    dependsOn: DependsOn,
  })
  .meta({
    id: 'TerraformComponent',
    description: 'A Terraform module from git, applied in the install account.',
  });

const PluginStep = z.strictObject({
  commands: z.array(z.string().min(1).max(4096)).min(1).max(100),
  environment: Environment.default({}),
});

export const CustomComponent = z
  .strictObject({
    type: z.literal('custom'),
    plugin: z.strictObject({
      image: ImageReference.describe('The container image the steps run in.'),
      build: PluginStep,
      deploy: PluginStep,
      destroy: PluginStep.optional().describe(
        'Removes what deploy created when the install is torn down; without it, teardown has nothing to run.',
      ),
    }),
    dependsOn: DependsOn,
  })
  .meta({
    id: 'CustomComponent',
    description: 'A plugin: a build step, a deploy step and optionally a destroy step the vendor supplies.',
  });

export const ComponentSpec = z
  .discriminatedUnion('type', [
    ImageComponent,
    DockerfileComponent,
    HelmComponent,
    TerraformComponent,
    CustomComponent,
  ])
  .meta({ id: 'ComponentSpec' });
export type ComponentSpec = z.output<typeof ComponentSpec>;
export type ComponentType = ComponentSpec['type'];

/** Component types whose artifact is a container image (so `{{ components.X.image.* }}` is defined). */
export const IMAGE_PRODUCING_TYPES: readonly ComponentType[] = ['image', 'dockerfile'];

// ---- builds ------------------------------------------------------------------------------------

export const RequestBuildRequest = z
  .strictObject({
    ref: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe("Branch, tag or commit to build instead of the component's ref."),
  })
  .meta({ id: 'RequestBuildRequest' });

// ---- installs ----------------------------------------------------------------------------------

export const CreateInstallRequest = z
  .strictObject({
    name: ResourceName.optional().describe('A label for people; need not be unique.'),
    accountId: z.string().regex(ACCOUNT_ID, { error: 'must be a 12-digit AWS account id' }),
    region: z.string().refine(isAwsRegion, { error: 'must be an AWS region name such as eu-west-1' }),
    inputs: z.record(z.string(), z.string().max(4096)).default({}),
  })
  .meta({ id: 'CreateInstallRequest' });
export type CreateInstallRequest = z.output<typeof CreateInstallRequest>;

// ---- releases ----------------------------------------------------------------------------------

/** Most installs one release may name (see MAX_RELEASE_INSTALLS). */
const RELEASE_INSTALLS_MAX = 10_000;
const Count = (min: number, max?: number) =>
  (max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max)).optional();

export const ReleaseStrategySchema = z
  .strictObject({
    waveSize: Count(1).describe('Installs per wave. Give this or wavePercent.'),
    wavePercent: Count(1, 100).describe('Installs per wave as a percentage of all, rounded up.'),
    pauseSeconds: z.number().int().min(0).max(31_536_000).describe('Seconds between waves.'),
    maxFailures: Count(0).describe(
      'Failed installs tolerated before no new wave starts. Give this or maxFailurePercent.',
    ),
    maxFailurePercent: Count(0, 100).describe(
      'Failed installs tolerated, as a percentage of those attempted.',
    ),
  })
  .meta({ id: 'ReleaseStrategy' });

export const CreateReleaseRequest = z
  .strictObject({
    builds: z
      .record(ResourceName, z.string().min(1).max(64))
      .default({})
      .describe('The build to deploy per component; the others deploy their latest successful build.'),
    components: z
      .array(ResourceName)
      .max(50)
      .optional()
      .describe('Components whose latest successful build to deploy; each must have one.'),
    installs: z
      .union([
        z.literal('all'),
        z
          .array(z.string().min(1).max(64))
          .min(1)
          .max(RELEASE_INSTALLS_MAX)
          .refine((ids) => new Set(ids).size === ids.length, { error: 'must not name an install twice' }),
      ])
      .describe("Install ids in wave order, or 'all' for every install of the app (oldest first)."),
    strategy: ReleaseStrategySchema,
  })
  .meta({ id: 'CreateReleaseRequest' });
export type CreateReleaseRequest = z.output<typeof CreateReleaseRequest>;

// ---- converting zod's issues -------------------------------------------------------------------

/** Formats a path the way problems name them: `body.inputs[2].name`. */
export function formatPath(base: string, path: readonly PropertyKey[]): string {
  let out = base;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_$][\w$]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

/** Every issue of a failed parse, one problem per field (an unknown field each on its own). */
export function problemsOf(error: z.ZodError, base: string): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        problems.push({ path: formatPath(base, [...issue.path, key]), message: 'unknown field' });
    } else {
      problems.push({ path: formatPath(base, issue.path), message: issue.message });
    }
  }
  return problems;
}
