import {
  dependantsToSkip,
  type PlannedComponent,
  planDeploy,
  renderForInstall,
} from '../../../lambda/deploy/plan';
import type { ComponentSpec } from '../../../lambda/domain/schemas';
import { type RenderContext, TemplateRenderError } from '../../../lambda/domain/templates';

const terraform: ComponentSpec = {
  type: 'terraform',
  source: { repo: 'https://github.com/acme/infra.git', ref: 'main', path: 'db' },
  terraformVersion: '1.9.8',
  variables: {},
  environment: {},
  dependsOn: [],
};

function component(name: string, dependencies: string[] = []): PlannedComponent {
  return { name, spec: terraform, dependencies };
}

/** net <- db, net <- cache, db + cache <- web; audit stands alone. */
const diamond = [
  component('web', ['db', 'cache']),
  component('db', ['net']),
  component('cache', ['net']),
  component('net'),
  component('audit'),
];

const context: RenderContext = {
  install: {
    id: 'inst_1',
    accountId: '111122223333',
    region: 'eu-west-1',
    inputs: { domain: 'shop.example.com' },
  },
  components: { db: { outputs: { endpoint: 'db.internal:5432' } } },
};

describe('planDeploy', () => {
  it('orders a diamond level by level, independents first with the roots', () => {
    expect(planDeploy(diamond).levels).toEqual([['audit', 'net'], ['cache', 'db'], ['web']]);
  });
});

describe('dependantsToSkip', () => {
  const { levels } = planDeploy(diamond);

  it('skips every component that depends on a failed one, transitively, in plan order', () => {
    expect(dependantsToSkip(levels, ['net'], diamond)).toEqual(['cache', 'db', 'web']);
  });

  it('keeps independent components and siblings of the failed one', () => {
    const skipped = dependantsToSkip(levels, ['db'], diamond);
    expect(skipped).toEqual(['web']);
    expect(skipped).not.toContain('cache');
    expect(skipped).not.toContain('audit');
  });

  it('never lists a failed component as skipped', () => {
    expect(dependantsToSkip(levels, ['db', 'web'], diamond)).toEqual([]);
  });
});

describe('renderForInstall', () => {
  it('fills in upstream outputs and install inputs, leaving the spec untouched', () => {
    const spec: ComponentSpec = {
      ...terraform,
      variables: { db: '{{ components.db.outputs.endpoint }}', host: 'www.{{ install.inputs.domain }}' },
      environment: { REGION: '{{ install.region }}' },
      dependsOn: ['db'],
    };

    const rendered = renderForInstall(spec, context);

    expect(rendered).toEqual({
      ...spec,
      variables: { db: 'db.internal:5432', host: 'www.shop.example.com' },
      environment: { REGION: 'eu-west-1' },
    });
    expect(spec.variables).toEqual({
      db: '{{ components.db.outputs.endpoint }}',
      host: 'www.{{ install.inputs.domain }}',
    });
  });

  it('names the path of a missing upstream output', () => {
    const spec: ComponentSpec = { ...terraform, variables: { pw: '{{ components.db.outputs.password }}' } };

    const act = () => renderForInstall(spec, context);

    expect(act).toThrow(TemplateRenderError);
    expect(act).toThrow(/^spec\.variables\.pw: .*component 'db' has no output 'password'/);
  });
});
