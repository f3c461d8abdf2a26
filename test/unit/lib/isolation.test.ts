import { synthesize } from '../../support/synth';

type Json = unknown;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: Json;
  Principal?: Json;
}
interface Template {
  Resources: Record<string, { Type: string; Properties?: Record<string, Json> }>;
}

/** Actions AWS offers no resource-level permission for: the only ones allowed on `*`. */
const WILDCARD_ONLY_ACTIONS = new Set([
  'ecr:GetAuthorizationToken',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
]);

/**
 * Resources AWS itself names and shares across an account, that a policy can name no narrower:
 * the rule Step Functions manages for codebuild:startBuild.sync, and the packaging tool's object
 * in the CDK asset bucket (read-only code, the same for every tenant).
 */
const AWS_IMPOSED_RESOURCES = [
  /:events:[a-z0-9-]+:\d{12}:rule\/StepFunctionsGetEventsForCodeBuildStartBuildRule$/,
  /:s3:::cdk-[a-z0-9]+-assets-\d{12}-[a-z0-9-]+\/[a-f0-9]{64}\.(?:zip|cjs)$/,
];

const { template } = synthesize(['acme', 'globex'], {
  env: { account: '123456789012', region: 'eu-west-1' },
});
const templates = {
  acme: template('acme').toJSON() as Template,
  globex: template('globex').toJSON() as Template,
};

function identityStatements(t: Template): { policy: string; statement: Statement }[] {
  const found: { policy: string; statement: Statement }[] = [];
  for (const [id, resource] of Object.entries(t.Resources)) {
    const documents: Json[] = [];
    if (resource.Type === 'AWS::IAM::Policy') documents.push(resource.Properties?.PolicyDocument);
    if (resource.Type === 'AWS::IAM::Role') {
      for (const inline of (resource.Properties?.Policies as { PolicyDocument: Json }[] | undefined) ?? []) {
        documents.push(inline.PolicyDocument);
      }
    }
    for (const document of documents) {
      for (const statement of (document as { Statement: Statement[] }).Statement)
        found.push({ policy: id, statement });
    }
  }
  return found;
}

/**
 * Whether a Resource entry belongs to the tenant: a reference to a resource of its own template,
 * or an ARN pattern that names only its own resources (its registry prefix, its own logical ids).
 */
function belongsToTenant(resource: Json, tenant: string, t: Template): boolean {
  if (typeof resource === 'string') {
    return resource.includes(`:repository/ferry-${tenant}/`) || resource.endsWith(`:role/ferry.${tenant}.*`);
  }
  const object = resource as Record<string, Json>;
  if ('Fn::GetAtt' in object) return (object['Fn::GetAtt'] as string[])[0] in t.Resources;
  if ('Ref' in object) return (object.Ref as string) in t.Resources;
  if ('Fn::Join' in object) {
    const parts = (object['Fn::Join'] as [string, Json[]])[1];
    const joined = parts.map((part) => (typeof part === 'string' ? part : JSON.stringify(part))).join('');
    if (joined.includes(`:repository/ferry-${tenant}/`)) return true;
    // The access roles of this tenant's installs, in customers' accounts: `ferry.<tenant>.<installId>`.
    if (joined.endsWith(`:iam::*:role/ferry.${tenant}.*`)) return true;
    // Its own state machines and their executions, named `ferry-<tenant>-<workflow>`.
    if (
      new RegExp(`:states:[^:]+:[^:]+:(?:stateMachine|execution):ferry-${tenant}-[a-z-]+(?::\\*)?$`).test(
        joined,
      )
    )
      return true;
    if (AWS_IMPOSED_RESOURCES.some((pattern) => pattern.test(joined))) return true;
    // A pattern built on one of the template's own resources (log streams of its log group, a
    // function's versions, CodeBuild's log group named after its project).
    return parts.some((part) => typeof part !== 'string' && belongsToTenant(part, tenant, t));
  }
  return false;
}

describe('tenant isolation', () => {
  it.each(['acme', 'globex'] as const)('every IAM statement of %s names only its own resources', (tenant) => {
    const t = templates[tenant];
    const statements = identityStatements(t);
    expect(statements.length).toBeGreaterThan(5);
    const offending: string[] = [];
    for (const { policy, statement } of statements) {
      const resources = ([] as Json[]).concat(statement.Resource ?? []);
      const actions = ([] as string[]).concat(statement.Action);
      for (const resource of resources) {
        if (resource === '*') {
          const notAllowed = actions.filter((action) => !WILDCARD_ONLY_ACTIONS.has(action));
          if (notAllowed.length > 0) offending.push(`${policy}: ${notAllowed.join(', ')} on *`);
        } else if (!belongsToTenant(resource, tenant, t)) {
          offending.push(`${policy}: ${actions.join(', ')} on ${JSON.stringify(resource)}`);
        }
      }
    }
    expect(offending).toEqual([]);
  });

  it("never names another tenant's registry prefix", () => {
    expect(JSON.stringify(templates.acme)).not.toContain('ferry-globex');
    expect(JSON.stringify(templates.globex)).not.toContain('ferry-acme');
  });

  it('shares no physical resource name between two tenants', () => {
    const namesOf = (t: Template) => {
      const names = new Set<string>();
      for (const resource of Object.values(t.Resources)) {
        for (const [key, value] of Object.entries(resource.Properties ?? {})) {
          // Policy and stage names are scoped to their role and API, not to the account.
          const accountWide = /Name$|^Prefix$/.test(key) && !['PolicyName', 'StageName'].includes(key);
          if (accountWide && typeof value === 'string') names.add(`${resource.Type}:${value}`);
        }
      }
      return names;
    };
    const acme = namesOf(templates.acme);
    const shared = [...namesOf(templates.globex)].filter((name) => acme.has(name));
    expect(acme.size).toBeGreaterThan(0);
    expect(shared).toEqual([]);
  });
});
