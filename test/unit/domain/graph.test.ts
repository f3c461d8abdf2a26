import {
  CycleError,
  dependantsOf,
  findCycle,
  type GraphNode,
  levels,
  MissingDependencyError,
  missingDependencies,
} from '../../../lambda/domain/graph';

/** `graph({ a: ['b'], b: [] })` */
function graph(edges: Record<string, string[]>): GraphNode[] {
  return Object.entries(edges).map(([name, dependsOn]) => ({ name, dependsOn }));
}

const diamond = graph({ app: ['api', 'worker'], api: ['db'], worker: ['db'], db: [] });

describe('findCycle', () => {
  it('finds no cycle in an acyclic graph', () => {
    expect(findCycle(diamond)).toBeUndefined();
    expect(findCycle([])).toBeUndefined();
  });

  it('reports a self-dependency as a cycle', () => {
    expect(findCycle(graph({ a: ['a'] }))).toEqual(['a', 'a']);
  });

  it('finds a two-node cycle', () => {
    expect(findCycle(graph({ b: ['a'], a: ['b'] }))).toEqual(['a', 'b', 'a']);
  });

  it('finds a three-node cycle, reported from where it closes', () => {
    const nodes = graph({ entry: ['x'], x: ['y'], y: ['z'], z: ['x'] });

    expect(findCycle(nodes)).toEqual(['x', 'y', 'z', 'x']);
  });

  it('reports the same cycle whatever the order of nodes and edges', () => {
    const nodes = graph({ c: ['a'], a: ['d', 'b'], b: ['c'], d: ['a'] });
    const shuffled = [...nodes]
      .reverse()
      .map((node) => ({ ...node, dependsOn: [...node.dependsOn].reverse() }));

    expect(findCycle(nodes)).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(shuffled)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('ignores dependencies on names that are not nodes', () => {
    expect(findCycle(graph({ a: ['ghost'], b: ['a'] }))).toBeUndefined();
  });
});

describe('missingDependencies', () => {
  it('lists dependencies on unknown names, sorted and deduplicated', () => {
    const nodes = graph({ web: ['db', 'cache', 'cache'], api: ['queue', 'db'], db: [] });

    expect(missingDependencies(nodes)).toEqual([
      { from: 'api', to: 'queue' },
      { from: 'web', to: 'cache' },
    ]);
  });

  it('returns nothing when every dependency is a node', () => {
    expect(missingDependencies(diamond)).toEqual([]);
  });
});

describe('levels', () => {
  it('groups a diamond graph into levels', () => {
    expect(levels(diamond)).toEqual([['db'], ['api', 'worker'], ['app']]);
  });

  it('places a node one level above its deepest dependency', () => {
    const nodes = graph({ top: ['a', 'c'], c: ['b'], b: ['a'], a: [], lone: [] });

    expect(levels(nodes)).toEqual([['a', 'lone'], ['b'], ['c'], ['top']]);
  });

  it('returns no levels for no nodes', () => {
    expect(levels([])).toEqual([]);
  });

  it('rejects a cyclic component graph with the cycle', () => {
    const nodes = graph({ a: ['b'], b: ['c'], c: ['a'], d: [] });

    expect(() => levels(nodes)).toThrow(CycleError);
    expect(() => levels(nodes)).toThrow('dependency cycle: a -> b -> c -> a');
    try {
      levels(nodes);
    } catch (error) {
      expect((error as CycleError).cycle).toEqual(['a', 'b', 'c', 'a']);
    }
  });

  it('rejects a dependency on a component that does not exist', () => {
    const nodes = graph({ a: ['ghost'] });

    expect(() => levels(nodes)).toThrow(MissingDependencyError);
    expect(() => levels(nodes)).toThrow("'a' depends on 'ghost', which does not exist");
  });
});

describe('dependantsOf', () => {
  it('lists direct and transitive dependants, sorted', () => {
    expect(dependantsOf(diamond, 'db')).toEqual(['api', 'app', 'worker']);
    expect(dependantsOf(diamond, 'api')).toEqual(['app']);
  });

  it('returns nothing for a node nothing depends on', () => {
    expect(dependantsOf(diamond, 'app')).toEqual([]);
  });

  it('lists dependants of a name that is not a node', () => {
    expect(dependantsOf(graph({ a: ['ghost'], b: ['a'] }), 'ghost')).toEqual(['a', 'b']);
  });

  it('never lists the name itself, even inside a cycle', () => {
    expect(dependantsOf(graph({ a: ['b'], b: ['a'], c: ['b'] }), 'a')).toEqual(['b', 'c']);
  });
});
