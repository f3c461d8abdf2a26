/**
 * Template references in component specs. Any string anywhere in a spec may contain references
 * written `{{ EXPR }}` that are filled in at deploy time from the install and from components
 * deployed before it. This module finds them (to validate a spec and to order components) and
 * renders them (once every value is known). It knows nothing of Lambda or AWS.
 */

import { INPUT_NAME, INPUT_NAME_RULE, RESOURCE_NAME, RESOURCE_NAME_RULE } from './names';

export type TemplateReference =
  | { kind: 'install'; field: 'id' | 'accountId' | 'region' }
  | { kind: 'input'; name: string }
  | { kind: 'output'; component: string; key: string }
  | { kind: 'image'; component: string; field: 'uri' | 'digest' };

export interface FoundReference {
  /** Where the string holding the reference is, e.g. `spec.service.environment.DB_HOST`. */
  readonly path: string;
  /** The text between the braces without surrounding whitespace, e.g. `install.region`. */
  readonly expression: string;
  readonly reference: TemplateReference;
}

export interface TemplateProblem {
  readonly path: string;
  readonly message: string;
}

export interface RenderContext {
  readonly install: {
    id: string;
    accountId: string;
    region: string;
    inputs: Readonly<Record<string, string>>;
  };
  readonly components: Readonly<
    Record<string, { outputs: Readonly<Record<string, string>>; image?: { uri: string; digest: string } }>
  >;
}

/** A reference could not be rendered: it is malformed or its value is not known. */
export class TemplateRenderError extends Error {
  override readonly name = 'TemplateRenderError';
  constructor(
    /** The path of the string holding the reference. */
    readonly path: string,
    /** The trimmed text between the braces; for an unterminated reference, the rest of the string. */
    readonly expression: string,
    message: string,
  ) {
    super(message);
  }
}

/** Output keys: 1-128 of letters, digits, underscores and hyphens, not starting with a digit or hyphen. */
export const OUTPUT_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,127}$/;
const OUTPUT_KEY_RULE =
  '1-128 letters, digits, underscores and hyphens, not starting with a digit or a hyphen';

const ALLOWED_FORMS =
  'install.id, install.accountId, install.region, install.inputs.NAME, ' +
  'components.NAME.outputs.KEY, components.NAME.image.uri or components.NAME.image.digest';

/**
 * The one scanner: a closed reference `{{ ... }}` whose body holds neither `{{` nor `}}`, or else
 * a lone `{{` that nothing closes before the next `{{` or the end of the string.
 */
const REFERENCE = /\{\{((?:(?!\{\{|\}\})[\s\S])*)\}\}|\{\{/g;

/** A property name written after a dot; anything else is written `["..."]`. */
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Parses the text between the braces (surrounding whitespace allowed); undefined if not an allowed form. */
export function parseExpression(expression: string): TemplateReference | undefined {
  const parts = expression.trim().split('.');
  const [root, second, third, fourth] = parts;
  if (root === 'install') {
    if (parts.length === 2 && (second === 'id' || second === 'accountId' || second === 'region')) {
      return { kind: 'install', field: second };
    }
    if (parts.length === 3 && second === 'inputs' && INPUT_NAME.test(third!)) {
      return { kind: 'input', name: third! };
    }
    return undefined;
  }
  if (root === 'components' && parts.length === 4 && RESOURCE_NAME.test(second!)) {
    if (third === 'outputs' && OUTPUT_KEY.test(fourth!)) {
      return { kind: 'output', component: second!, key: fourth! };
    }
    if (third === 'image' && (fourth === 'uri' || fourth === 'digest')) {
      return { kind: 'image', component: second!, field: fourth };
    }
  }
  return undefined;
}

/** Walks a JSON value; `basePath` is prefixed to paths. */
export function findReferences(
  value: unknown,
  basePath: string,
): { references: FoundReference[]; problems: TemplateProblem[] } {
  const references: FoundReference[] = [];
  const problems: TemplateProblem[] = [];
  walkStrings(value, basePath, (text, path) => {
    for (const token of scan(text)) {
      if (token.kind === 'reference') {
        references.push({ path, expression: token.expression, reference: token.reference });
      } else {
        problems.push({ path, message: token.message });
      }
    }
  });
  return { references, problems };
}

/**
 * Renders every `{{ }}` in every string using the given context; returns a new value and leaves
 * the input untouched. Rendered values are not scanned again, so a value containing `{{` stays as
 * it is. Throws TemplateRenderError naming the path on a malformed reference or a missing value.
 */
export function renderTemplates(value: unknown, context: RenderContext, basePath = ''): unknown {
  return mapStrings(value, basePath, (text, path) => {
    let rendered = '';
    let last = 0;
    for (const token of scan(text)) {
      if (token.kind === 'problem') {
        throw new TemplateRenderError(path, token.expression, `${path}: ${token.message}`);
      }
      const resolved = resolve(token.reference, context);
      if (resolved.missing !== undefined) {
        throw new TemplateRenderError(
          path,
          token.expression,
          `${path}: cannot render '{{ ${token.expression} }}': ${resolved.missing}`,
        );
      }
      rendered += text.slice(last, token.index) + resolved.value;
      last = token.index + token.length;
    }
    return last === 0 ? text : rendered + text.slice(last);
  });
}

/** The component names a value references (outputs or image), sorted, deduplicated. */
export function referencedComponents(references: readonly FoundReference[]): string[] {
  const names = new Set<string>();
  for (const { reference } of references) {
    if (reference.kind === 'output' || reference.kind === 'image') names.add(reference.component);
  }
  return [...names].sort();
}

type Token =
  | { kind: 'reference'; index: number; length: number; expression: string; reference: TemplateReference }
  | { kind: 'problem'; index: number; length: number; expression: string; message: string };

function scan(text: string): Token[] {
  const tokens: Token[] = [];
  for (const match of text.matchAll(REFERENCE)) {
    const index = match.index;
    const length = match[0].length;
    const body = match[1];
    if (body === undefined) {
      const rest = text.slice(index + 2).trim();
      tokens.push({
        kind: 'problem',
        index,
        length,
        expression: rest,
        message:
          `unterminated reference '${excerpt(text.slice(index))}': ` +
          "no '}}' before the next '{{' or the end of the string",
      });
      continue;
    }
    const expression = body.trim();
    if (expression === '') {
      tokens.push({ kind: 'problem', index, length, expression, message: `empty reference '${match[0]}'` });
      continue;
    }
    const reference = parseExpression(expression);
    if (reference === undefined) {
      const hint = nameHint(expression);
      tokens.push({
        kind: 'problem',
        index,
        length,
        expression,
        message:
          `'${excerpt(match[0])}' is not a valid reference` +
          (hint === undefined ? '' : ` (${hint})`) +
          `; allowed forms: ${ALLOWED_FORMS}`,
      });
      continue;
    }
    tokens.push({ kind: 'reference', index, length, expression, reference });
  }
  return tokens;
}

/** When the shape is right but a name is not, says which rule the name breaks. */
function nameHint(expression: string): string | undefined {
  const parts = expression.split('.');
  const [root, second, third, fourth] = parts;
  if (root === 'install' && second === 'inputs' && parts.length === 3 && !INPUT_NAME.test(third!)) {
    return `input name '${third}' must be ${INPUT_NAME_RULE}`;
  }
  if (root !== 'components' || parts.length !== 4) return undefined;
  if (!RESOURCE_NAME.test(second!)) return `component name '${second}' must be ${RESOURCE_NAME_RULE}`;
  if (third === 'outputs' && !OUTPUT_KEY.test(fourth!)) {
    return `output key '${fourth}' must be ${OUTPUT_KEY_RULE}`;
  }
  return undefined;
}

function excerpt(text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 77)}...`;
}

function resolve(
  reference: TemplateReference,
  context: RenderContext,
): { value: string; missing?: undefined } | { value?: undefined; missing: string } {
  switch (reference.kind) {
    case 'install':
      return present(context.install[reference.field], `the install has no ${reference.field}`);
    case 'input':
      return present(
        own(context.install.inputs, reference.name),
        `the install has no input '${reference.name}'`,
      );
    case 'output': {
      const component = own(context.components, reference.component);
      if (component === undefined)
        return { missing: `component '${reference.component}' has no outputs yet` };
      return present(
        own(component.outputs, reference.key),
        `component '${reference.component}' has no output '${reference.key}'`,
      );
    }
    case 'image': {
      const image = own(context.components, reference.component)?.image;
      if (image === undefined) return { missing: `component '${reference.component}' has no image` };
      return present(
        image[reference.field],
        `component '${reference.component}' image has no ${reference.field}`,
      );
    }
  }
}

function present(
  value: string | undefined,
  missing: string,
): { value: string; missing?: undefined } | { value?: undefined; missing: string } {
  return typeof value === 'string' ? { value } : { missing };
}

/** Reads an own property only, so `constructor` or `__proto__` never resolve to something inherited. */
function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (!IDENTIFIER.test(key)) return `${base}[${JSON.stringify(key)}]`;
  return base === '' ? key : `${base}.${key}`;
}

function walkStrings(value: unknown, path: string, visit: (text: string, path: string) => void): void {
  if (typeof value === 'string') {
    visit(value, path);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => {
      walkStrings(item, childPath(path, index), visit);
    });
  } else if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) walkStrings(item, childPath(path, key), visit);
  }
}

function mapStrings(value: unknown, path: string, map: (text: string, path: string) => string): unknown {
  if (typeof value === 'string') return map(value, path);
  if (Array.isArray(value)) return value.map((item, index) => mapStrings(item, childPath(path, index), map));
  if (isPlainObject(value)) {
    // fromEntries defines own properties, so a `__proto__` key stays a plain key.
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, mapStrings(item, childPath(path, key), map)]),
    );
  }
  return value;
}
