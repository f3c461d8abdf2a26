/**
 * Loads the workflow definitions in this folder. The CDK app and the local runner both load them
 * through here, so the file a test runs is the file that deploys.
 *
 * A definition is Amazon States Language JSON. Where it needs a deploy-time value (a function ARN),
 * it holds a placeholder `${Name}` as a whole string value; the CDK app substitutes it through
 * `definitionSubstitutions`, and the local runner maps Task states to handlers by state name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import validateAsl from 'asl-validator';

export const DEFINITIONS_DIR = __dirname;

export type AslObject = { [key: string]: unknown };

export interface WorkflowDefinition {
  /** The workflow's name, the file name without `.asl.json`. */
  readonly name: string;
  /** Where the definition was read from. */
  readonly file: string;
  /** The parsed definition, placeholders unsubstituted. */
  readonly definition: AslObject;
  /** The `${Name}` placeholders the definition uses, sorted. */
  readonly placeholders: readonly string[];
  /** The names of every Task state, including those inside Parallel branches and Map processors. */
  readonly taskStates: readonly string[];
}

/** A definition file that is missing, not JSON, or not valid Amazon States Language. */
export class DefinitionError extends Error {
  override readonly name = 'DefinitionError';
}

const PLACEHOLDER = /^\$\{([A-Za-z][A-Za-z0-9]*)\}$/;

function isObject(value: unknown): value is AslObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Replaces every whole-string `${Name}` placeholder with `replace(Name)`; returns a copy. */
export function substitutePlaceholders(value: unknown, replace: (name: string) => string): unknown {
  if (typeof value === 'string') {
    const match = PLACEHOLDER.exec(value);
    return match ? replace(match[1]) : value;
  }
  if (Array.isArray(value)) return value.map((item) => substitutePlaceholders(item, replace));
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitutePlaceholders(v, replace)]));
  }
  return value;
}

function collectTaskStates(states: unknown, into: string[]): void {
  if (!isObject(states)) return;
  for (const [name, state] of Object.entries(states)) {
    if (!isObject(state)) continue;
    if (state.Type === 'Task') into.push(name);
    if (Array.isArray(state.Branches)) {
      for (const branch of state.Branches) if (isObject(branch)) collectTaskStates(branch.States, into);
    }
    for (const key of ['ItemProcessor', 'Iterator']) {
      const processor = state[key];
      if (isObject(processor)) collectTaskStates(processor.States, into);
    }
  }
}

/**
 * The definition with each placeholder replaced by a well-formed function ARN that exists nowhere:
 * what validators and the local runner (which maps Tasks by state name) are given.
 */
export function withStandInArns(definition: AslObject): AslObject {
  return substitutePlaceholders(
    definition,
    (name) => `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
  ) as AslObject;
}

/** Checks a parsed definition with asl-validator; throws a DefinitionError naming the file and every problem. */
export function validateDefinition(definition: AslObject, file: string): void {
  const result = validateAsl(withStandInArns(definition));
  if (!result.isValid) {
    throw new DefinitionError(
      `${file} is not a valid state machine definition:\n  ${result.errorsText('\n  ')}`,
    );
  }
}

/** Parses and validates a definition held as text; `file` names it in errors. */
export function parseDefinition(name: string, text: string, file: string): WorkflowDefinition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DefinitionError(`${file} is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new DefinitionError(`${file} must hold a JSON object`);
  validateDefinition(parsed, file);
  const placeholders = new Set<string>();
  substitutePlaceholders(parsed, (placeholder) => {
    placeholders.add(placeholder);
    return placeholder;
  });
  const taskStates: string[] = [];
  collectTaskStates(parsed.States, taskStates);
  return { name, file, definition: parsed, placeholders: [...placeholders].sort(), taskStates };
}

/** Reads `stepfunctions/<name>.asl.json` (or the same name under `dir`) and validates it. */
export function loadDefinition(name: string, dir: string = DEFINITIONS_DIR): WorkflowDefinition {
  const file = join(dir, `${name}.asl.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DefinitionError(`cannot read workflow definition ${file}: ${(error as Error).message}`);
  }
  return parseDefinition(name, text, file);
}
