import {
  findReferences,
  parseExpression,
  type RenderContext,
  referencedComponents,
  renderTemplates,
  TemplateRenderError,
} from '../../../lambda/domain/templates';

const context: RenderContext = {
  install: {
    id: 'inst-1',
    accountId: '123456789012',
    region: 'eu-west-1',
    inputs: { DB_NAME: 'orders', replicas: '3' },
  },
  components: {
    db: { outputs: { host: 'db.internal', port: '5432' } },
    api: {
      outputs: {},
      image: { uri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.0', digest: 'sha256:abc' },
    },
  },
};

function renderError(act: () => unknown): TemplateRenderError {
  try {
    act();
  } catch (error) {
    if (error instanceof TemplateRenderError) return error;
    throw error;
  }
  throw new Error('expected a TemplateRenderError');
}

describe('parseExpression', () => {
  it.each([
    ['install.id', { kind: 'install', field: 'id' }],
    ['install.accountId', { kind: 'install', field: 'accountId' }],
    ['install.region', { kind: 'install', field: 'region' }],
    ['install.inputs.DB_NAME', { kind: 'input', name: 'DB_NAME' }],
    ['install.inputs._x9', { kind: 'input', name: '_x9' }],
    ['components.db.outputs.host', { kind: 'output', component: 'db', key: 'host' }],
    [
      'components.my-db2.outputs.Conn-String_1',
      { kind: 'output', component: 'my-db2', key: 'Conn-String_1' },
    ],
    ['components.api.image.uri', { kind: 'image', component: 'api', field: 'uri' }],
    ['components.api.image.digest', { kind: 'image', component: 'api', field: 'digest' }],
    ['  install.region\t', { kind: 'install', field: 'region' }],
  ])('parses the allowed form %j', (expression, expected) => {
    expect(parseExpression(expression)).toEqual(expected);
  });

  it.each([
    'install',
    'install.name',
    'install.inputs',
    'install.inputs.1st',
    'install.inputs.has-hyphen',
    `install.inputs.${'a'.repeat(65)}`,
    'install.id.extra',
    'install . id',
    'components.db',
    'components.db.outputs',
    'components.Db.outputs.host',
    'components.db-.outputs.host',
    'components.a--b.outputs.host',
    'components.db.outputs.-host',
    `components.db.outputs.${'k'.repeat(129)}`,
    'components.db.outputs.host.extra',
    'components.db.image.tag',
    'components.db.image',
    'env.HOME',
    '',
  ])('rejects the expression %j', (expression) => {
    expect(parseExpression(expression)).toBeUndefined();
  });

  it('accepts names at their maximum lengths', () => {
    expect(parseExpression(`install.inputs.${'a'.repeat(64)}`)).toEqual({
      kind: 'input',
      name: 'a'.repeat(64),
    });
    const component = 'c'.repeat(63);
    const key = 'k'.repeat(128);
    expect(parseExpression(`components.${component}.outputs.${key}`)).toEqual({
      kind: 'output',
      component,
      key,
    });
  });
});

describe('findReferences', () => {
  it('finds references with and without whitespace inside the braces', () => {
    const { references, problems } = findReferences('{{install.id}}-{{  install.region  }}', 'name');

    expect(problems).toEqual([]);
    expect(references).toEqual([
      { path: 'name', expression: 'install.id', reference: { kind: 'install', field: 'id' } },
      { path: 'name', expression: 'install.region', reference: { kind: 'install', field: 'region' } },
    ]);
  });

  it('names nested object and array paths', () => {
    const spec = {
      service: { environment: { DB_HOST: '{{ components.db.outputs.host }}' } },
      valuesFiles: ['values.yaml', 's3://bucket/{{ install.inputs.DB_NAME }}.yaml'],
      matrix: [[{ image: '{{ components.api.image.uri }}' }]],
    };

    const { references, problems } = findReferences(spec, 'spec');

    expect(problems).toEqual([]);
    expect(references.map(({ path, expression }) => [path, expression])).toEqual([
      ['spec.service.environment.DB_HOST', 'components.db.outputs.host'],
      ['spec.valuesFiles[1]', 'install.inputs.DB_NAME'],
      ['spec.matrix[0][0].image', 'components.api.image.uri'],
    ]);
  });

  it('writes keys that are not identifiers in brackets', () => {
    const spec = {
      'key with space': '{{ install.id }}',
      'my-key': { '0': '{{ install.region }}' },
      'quote"d': ['{{ install.accountId }}'],
    };

    const { references } = findReferences(spec, 'spec');

    expect(references.map(({ path }) => path)).toEqual([
      'spec["key with space"]',
      'spec["my-key"]["0"]',
      'spec["quote\\"d"][0]',
    ]);
  });

  it('starts paths without a leading dot when the base path is empty', () => {
    const { references } = findReferences({ a: ['{{ install.id }}'] }, '');

    expect(references.map(({ path }) => path)).toEqual(['a[0]']);
  });

  it('ignores non-string leaves, object keys and strings without references', () => {
    const spec = { '{{ install.id }}': 'plain', n: 1, b: true, z: null, s: 'a } b }} c { d' };

    expect(findReferences(spec, 'spec')).toEqual({ references: [], problems: [] });
  });

  it('rejects an unterminated reference', () => {
    const { references, problems } = findReferences({ url: 'https://{{ install.region' }, 'spec');

    expect(references).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe('spec.url');
    expect(problems[0]!.message).toMatch(/unterminated reference '\{\{ install\.region'/);
  });

  it('rejects a reference left open before the next one, and still finds the next one', () => {
    const { references, problems } = findReferences('{{ install.id {{ install.region }}', 'x');

    expect(problems.map(({ message }) => message)).toEqual([
      expect.stringMatching(/^unterminated reference/),
    ]);
    expect(references.map(({ expression }) => expression)).toEqual(['install.region']);
  });

  it.each(['{{}}', '{{ }}', 'a {{\n\t}} b'])('rejects the empty reference %j', (text) => {
    const { problems } = findReferences({ list: [text] }, 'spec');

    expect(problems).toEqual([{ path: 'spec.list[0]', message: expect.stringMatching(/^empty reference/) }]);
  });

  it('rejects an expression of no allowed form and lists the allowed forms', () => {
    const { references, problems } = findReferences({ home: '{{ env.HOME }}' }, 'spec');

    expect(references).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe('spec.home');
    expect(problems[0]!.message).toContain("'{{ env.HOME }}' is not a valid reference");
    for (const form of ['install.id', 'install.inputs.NAME', 'components.NAME.outputs.KEY']) {
      expect(problems[0]!.message).toContain(form);
    }
  });

  it('says which name rule a malformed component name breaks', () => {
    const { problems } = findReferences('{{ components.My_DB.outputs.host }}', 'spec');

    expect(problems[0]!.message).toContain("component name 'My_DB' must be");
  });

  it('reports every problem in a string alongside the valid references', () => {
    const { references, problems } = findReferences(
      '{{ install.id }} {{ }} {{ nope }} {{ install.region',
      's',
    );

    expect(references).toHaveLength(1);
    expect(problems.map(({ message }) => message.split(' ')[0])).toEqual(['empty', "'{{", 'unterminated']);
  });
});

describe('renderTemplates', () => {
  it('renders every allowed form', () => {
    const spec = {
      id: '{{ install.id }}',
      account: '{{install.accountId}}',
      region: '{{ install.region }}',
      db: '{{ install.inputs.DB_NAME }}',
      host: '{{ components.db.outputs.host }}',
      uri: '{{ components.api.image.uri }}',
      digest: '{{ components.api.image.digest }}',
    };

    expect(renderTemplates(spec, context)).toEqual({
      id: 'inst-1',
      account: '123456789012',
      region: 'eu-west-1',
      db: 'orders',
      host: 'db.internal',
      uri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.0',
      digest: 'sha256:abc',
    });
  });

  it('renders several references in one string', () => {
    const template =
      'pg://{{ components.db.outputs.host }}:{{components.db.outputs.port}}/{{install.inputs.DB_NAME}}';

    const rendered = renderTemplates(template, context);

    expect(rendered).toBe('pg://db.internal:5432/orders');
  });

  it('returns a new value with nested strings rendered and other leaves unchanged', () => {
    const spec = {
      replicas: 2,
      enabled: true,
      nothing: null,
      args: ['--region', '{{ install.region }}', 7],
      'odd key': { deep: ['{{ install.inputs.replicas }}'] },
    };
    const before = structuredClone(spec);

    const rendered = renderTemplates(spec, context);

    expect(rendered).toEqual({
      replicas: 2,
      enabled: true,
      nothing: null,
      args: ['--region', 'eu-west-1', 7],
      'odd key': { deep: ['3'] },
    });
    expect(rendered).not.toBe(spec);
    expect(spec).toEqual(before);
  });

  it('does not render a value that itself looks like a reference', () => {
    const withBraces: RenderContext = {
      ...context,
      install: { ...context.install, inputs: { x: '{{ install.id }}' } },
    };

    expect(renderTemplates('{{ install.inputs.x }}', withBraces)).toBe('{{ install.id }}');
  });

  it('keeps __proto__ as a plain key', () => {
    const spec: unknown = JSON.parse('{"__proto__": {"polluted": "{{ install.id }}"}}');

    const rendered = renderTemplates(spec, context) as Record<string, unknown>;

    expect(Object.getPrototypeOf(rendered)).toBe(Object.prototype);
    expect(Object.hasOwn(rendered, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(rendered, '__proto__')?.value).toEqual({ polluted: 'inst-1' });
  });

  it.each([
    ['{{ install.inputs.MISSING }}', "the install has no input 'MISSING'"],
    ['{{ install.inputs.constructor }}', "the install has no input 'constructor'"],
    ['{{ components.cache.outputs.host }}', "component 'cache' has no outputs yet"],
    ['{{ components.db.outputs.user }}', "component 'db' has no output 'user'"],
    ['{{ components.db.image.uri }}', "component 'db' has no image"],
  ])('fails on a missing value for %s, naming the path', (template, reason) => {
    const error = renderError(() =>
      renderTemplates({ service: { env: [{ value: `x${template}` }] } }, context, 'spec'),
    );

    expect(error.path).toBe('spec.service.env[0].value');
    expect(error.expression).toBe(template.slice(3, -3));
    expect(error.message).toContain('spec.service.env[0].value');
    expect(error.message).toContain(reason);
  });

  it('fails on a malformed reference, naming the path', () => {
    const error = renderError(() => renderTemplates({ a: ['ok', '{{ install.region'] }, context));

    expect(error.path).toBe('a[1]');
    expect(error.message).toMatch(/^a\[1\]: unterminated reference/);
  });
});

describe('referencedComponents', () => {
  it('lists referenced components sorted and deduplicated, ignoring install references', () => {
    const { references } = findReferences(
      [
        '{{ components.web.image.uri }}',
        '{{ components.db.outputs.host }}:{{ components.db.outputs.port }}',
        '{{ install.inputs.DB_NAME }} {{ install.id }}',
        '{{ components.api.outputs.url }}',
      ],
      'spec',
    );

    expect(referencedComponents(references)).toEqual(['api', 'db', 'web']);
  });

  it('returns nothing for no references', () => {
    expect(referencedComponents([])).toEqual([]);
  });
});
