/**
 * The deploy plan of an install: which components deploy in which order, which are skipped when
 * one fails, and each component's spec rendered for the install. Pure: no AWS, no state.
 */

import type { App, Install } from '../domain/control-plane';
import { dependantsOf, type GraphNode, levels } from '../domain/graph';
import type { ComponentSpec } from '../domain/schemas';
import { type RenderContext, renderTemplates } from '../domain/templates';

export interface PlannedComponent {
  readonly name: string;
  readonly spec: ComponentSpec;
  /** Every component it depends on: `dependsOn` and the components its templates reference. */
  readonly dependencies: readonly string[];
}

export interface DeployPlan {
  /** Level 0 first; the components of one level may deploy in parallel. Names sorted within a level. */
  readonly levels: string[][];
}

/**
 * Orders the components level by level. Throws MissingDependencyError or CycleError (from graph.ts)
 * when the components do not form an acyclic graph, which the control plane never lets happen.
 */
export function planDeploy(components: readonly PlannedComponent[]): DeployPlan {
  return { levels: levels(graphOf(components)) };
}

/**
 * The components of the plan that must not deploy because they depend, directly or transitively,
 * on a failed one; in plan order (by level, then name). Failed components themselves are not
 * included, and components independent of every failure are kept.
 */
export function dependantsToSkip(
  planLevels: readonly (readonly string[])[],
  failed: readonly string[],
  components: readonly PlannedComponent[],
): string[] {
  const graph = graphOf(components);
  const failedSet = new Set(failed);
  const skipped = new Set<string>();
  for (const name of failed) {
    for (const dependant of dependantsOf(graph, name)) {
      if (!failedSet.has(dependant)) skipped.add(dependant);
    }
  }
  return planLevels.flat().filter((name) => skipped.has(name));
}

/**
 * The spec with every template rendered from the install and the components deployed before it.
 * Throws TemplateRenderError naming the path (`spec.service.environment.DB`) when a value is missing.
 */
export function renderForInstall(spec: ComponentSpec, context: RenderContext): ComponentSpec {
  // Rendering replaces strings with strings and keeps every key: the result has the spec's shape.
  return renderTemplates(spec, context, 'spec') as ComponentSpec;
}

function graphOf(components: readonly PlannedComponent[]): GraphNode[] {
  return components.map(({ name, dependencies }) => ({ name, dependsOn: dependencies }));
}

/**
 * What a component's templates render from: the app's input defaults overridden by the install's
 * inputs, and each given component's recorded outputs (its synced image apart, as `image`).
 */
export function renderContextFor(
  app: Pick<App, 'inputs'>,
  install: Pick<Install, 'id' | 'accountId' | 'region' | 'inputs'>,
  recorded: Iterable<[string, { outputs: Record<string, string> }]>,
): RenderContext {
  const inputs: Record<string, string> = {};
  for (const input of app.inputs) if (input.default !== undefined) inputs[input.name] = input.default;
  Object.assign(inputs, install.inputs);
  const components: Record<
    string,
    { outputs: Record<string, string>; image?: { uri: string; digest: string } }
  > = {};
  for (const [name, record] of recorded) {
    const { 'image.uri': uri, 'image.digest': digest, ...outputs } = record.outputs;
    components[name] = { outputs, ...(uri && digest && { image: { uri, digest } }) };
  }
  return {
    install: { id: install.id, accountId: install.accountId, region: install.region, inputs },
    components,
  };
}
