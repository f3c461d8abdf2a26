import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWorkflow, UnmappedTaskError } from '../../../local/stepfunctions';
import { DEFINITIONS_DIR, DefinitionError, loadDefinition } from '../../../stepfunctions/definitions';

/** A `${Name}` placeholder, as definitions write one. */
const placeholder = (name: string) => `\${${name}}`;

function definitionsDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-asl-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.asl.json`), text);
  return dir;
}

describe('workflow definitions', () => {
  it.each(readdirSync(DEFINITIONS_DIR).filter((file) => file.endsWith('.asl.json')))(
    '%s is valid Amazon States Language',
    (file) => {
      const loaded = loadDefinition(file.replace(/\.asl\.json$/, ''));
      expect(loaded.taskStates.length).toBeGreaterThan(0);
    },
  );

  it('lists placeholders and Task states, including those inside Parallel and Map', () => {
    const dir = definitionsDir({
      nested: JSON.stringify({
        StartAt: 'Fan',
        States: {
          Fan: {
            Type: 'Parallel',
            Branches: [
              {
                StartAt: 'A',
                States: { A: { Type: 'Task', Resource: placeholder('AFunctionArn'), End: true } },
              },
            ],
            Next: 'Each',
          },
          Each: {
            Type: 'Map',
            ItemProcessor: {
              StartAt: 'B',
              States: { B: { Type: 'Task', Resource: placeholder('BFunctionArn'), End: true } },
            },
            End: true,
          },
        },
      }),
    });
    const loaded = loadDefinition('nested', dir);
    expect(loaded.taskStates).toEqual(['A', 'B']);
    expect(loaded.placeholders).toEqual(['AFunctionArn', 'BFunctionArn']);
  });

  it('refuses a definition that fails asl-validator, naming the file and the problem', () => {
    const dir = definitionsDir({
      broken: JSON.stringify({ StartAt: 'Missing', States: { Only: { Type: 'Pass', Next: 'Nowhere' } } }),
    });
    expect(() => loadDefinition('broken', dir)).toThrow(DefinitionError);
    expect(() => loadDefinition('broken', dir)).toThrow(
      /broken\.asl\.json is not a valid state machine definition:[\s\S]*Nowhere/,
    );
  });

  it('refuses a file that is not JSON and a file that is missing', () => {
    const dir = definitionsDir({ text: '{ "StartAt": ' });
    expect(() => loadDefinition('text', dir)).toThrow(/text\.asl\.json is not JSON/);
    expect(() => loadDefinition('absent', dir)).toThrow(
      /cannot read workflow definition .*absent\.asl\.json/,
    );
  });

  it('refuses to run a workflow with a Task left unmapped, before anything runs', async () => {
    const calls: string[] = [];
    const run = runWorkflow('self-check', {}, { tasks: {} });
    await expect(run).rejects.toThrow(UnmappedTaskError);
    await expect(runWorkflow('self-check', {}, { tasks: {} })).rejects.toThrow(
      /Task states without a local handler: CheckStateTable/,
    );
    await expect(
      runWorkflow(
        'self-check',
        {},
        { tasks: { CheckStateTable: () => calls.push('x'), Typo: () => calls.push('y') } },
      ),
    ).rejects.toThrow(/not Tasks here: Typo/);
    expect(calls).toEqual([]);
  });
});
