/**
 * The component dependency graph: which components must be deployed before which. Every function
 * is deterministic (nodes in name order, edges in sorted order) so the same app always yields the
 * same cycle report and the same deploy order. Nodes sharing a name are merged; repeated edges
 * count once. Names compare by UTF-16 code units (`Array.prototype.sort`), not by locale.
 */

export interface GraphNode {
  readonly name: string;
  readonly dependsOn: readonly string[];
}

/** The graph has a cycle; `cycle` starts and ends with the same name, e.g. ['a', 'b', 'a']. */
export class CycleError extends Error {
  override readonly name = 'CycleError';
  constructor(readonly cycle: string[]) {
    super(`dependency cycle: ${cycle.join(' -> ')}`);
  }
}

/** Some node depends on a name that is not a node. */
export class MissingDependencyError extends Error {
  override readonly name = 'MissingDependencyError';
  constructor(readonly missing: { from: string; to: string }[]) {
    const each = missing.map(({ from, to }) => `'${from}' depends on '${to}', which does not exist`);
    super(`missing dependencies: ${each.join('; ')}`);
  }
}

/**
 * Returns the first cycle found as a path of names that starts and ends with the same name, e.g.
 * ['a','b','c','a'], or undefined. Deterministic: visit nodes in name order, edges in sorted order.
 * Edges to names that are not nodes are ignored here (see missingDependencies).
 */
export function findCycle(nodes: readonly GraphNode[]): string[] | undefined {
  const edges = adjacency(nodes);
  const done = new Set<string>();
  const onPath = new Map<string, number>();
  const path: string[] = [];

  const visit = (name: string): string[] | undefined => {
    onPath.set(name, path.length);
    path.push(name);
    for (const next of edges.get(name) ?? []) {
      const start = onPath.get(next);
      if (start !== undefined) return [...path.slice(start), next];
      if (done.has(next) || !edges.has(next)) continue;
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    onPath.delete(name);
    done.add(name);
    return undefined;
  };

  for (const name of edges.keys()) {
    if (done.has(name)) continue;
    const cycle = visit(name);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

/** Names in `dependsOn` that are not nodes: [{from, to}] sorted by from, then to. */
export function missingDependencies(nodes: readonly GraphNode[]): { from: string; to: string }[] {
  const edges = adjacency(nodes);
  const missing: { from: string; to: string }[] = [];
  for (const [from, targets] of edges) {
    for (const to of targets) if (!edges.has(to)) missing.push({ from, to });
  }
  return missing;
}

/**
 * Groups nodes into levels: level 0 has no dependencies, level n depends only on lower levels and
 * on level n - 1 at least; names sorted within a level. Throws MissingDependencyError (an Error)
 * on a missing dependency, checked first, and CycleError on a cycle.
 */
export function levels(nodes: readonly GraphNode[]): string[][] {
  const missing = missingDependencies(nodes);
  if (missing.length > 0) throw new MissingDependencyError(missing);
  const cycle = findCycle(nodes);
  if (cycle !== undefined) throw new CycleError(cycle);

  const edges = adjacency(nodes);
  const levelOf = new Map<string, number>();
  const result: string[][] = [];
  while (levelOf.size < edges.size) {
    const level = result.length;
    const ready = [...edges]
      .filter(([name, targets]) => {
        if (levelOf.has(name)) return false;
        return targets.every((target) => (levelOf.get(target) ?? level) < level);
      })
      .map(([name]) => name);
    // Unreachable after the checks above; guards against looping forever if they ever change.
    if (ready.length === 0) throw new Error('levels: no node is ready; the graph is not acyclic');
    for (const name of ready) levelOf.set(name, level);
    result.push(ready);
  }
  return result;
}

/** The names that depend on `name` directly or transitively, sorted; `name` itself is never included. */
export function dependantsOf(nodes: readonly GraphNode[], name: string): string[] {
  const dependants = new Map<string, string[]>();
  for (const [from, targets] of adjacency(nodes)) {
    for (const to of targets) dependants.set(to, [...(dependants.get(to) ?? []), from]);
  }
  const found = new Set<string>();
  const queue = [name];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    for (const dependant of dependants.get(next) ?? []) {
      if (dependant === name || found.has(dependant)) continue;
      found.add(dependant);
      queue.push(dependant);
    }
  }
  return [...found].sort();
}

/** Name -> sorted, deduplicated dependencies, with names in sorted order. */
function adjacency(nodes: readonly GraphNode[]): Map<string, string[]> {
  const merged = new Map<string, Set<string>>();
  for (const node of nodes) {
    const targets = merged.get(node.name) ?? new Set<string>();
    for (const target of node.dependsOn) targets.add(target);
    merged.set(node.name, targets);
  }
  return new Map([...merged.keys()].sort().map((name) => [name, [...merged.get(name)!].sort()]));
}
