/**
 * Runs a workflow definition from stepfunctions/ with aws-local-stepfunctions, every Task state
 * mapped by name to the same handler code Lambda runs. A Task left unmapped is refused before the
 * run starts: the local runner never calls AWS.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { loadDefinition, type WorkflowDefinition, withStandInArns } from '../stepfunctions/definitions';

// aws-local-stepfunctions uses Promise.withResolvers (Node 22+); supply it on Node 20.
type WithResolvers = <T>() => {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason?: unknown) => void;
};
const promiseStatics = Promise as unknown as { withResolvers?: WithResolvers };
if (typeof promiseStatics.withResolvers !== 'function') {
  promiseStatics.withResolvers = <T>() => {
    let resolve!: (value: T) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

// biome-ignore lint/suspicious/noExplicitAny: task handlers take and return any JSON
export type TaskHandler = (input: any) => Promise<unknown> | unknown;

export interface RunWorkflowOptions {
  /** The handler for each Task state, by state name. Every Task state must have one. */
  readonly tasks: Readonly<Record<string, TaskHandler>>;
  /** The execution name `$$.Execution.Name` resolves to. @default a random name */
  readonly executionName?: string;
  /** Milliseconds to wait in each named Wait state instead of the definition's. @default as defined */
  readonly waitOverrides?: Readonly<Record<string, number>>;
  /** Folder the definition is read from. @default the repository's stepfunctions/ */
  readonly definitionsDir?: string;
}

export interface WorkflowRun {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output?: unknown;
  readonly error?: string;
  readonly cause?: string;
  /** Every state entered, in order. */
  readonly statesEntered: readonly string[];
  /** The type of each state entered (`Task`, `Choice`, `Map` …), in the same order. */
  readonly stateTypesEntered: readonly string[];
  /** Map iterations started, across every Map state. */
  readonly mapIterations: number;
  /** The largest input or output any state had, in bytes of JSON: Step Functions allows 256 KiB. */
  readonly largestStateBytes: number;
}

export class UnmappedTaskError extends Error {
  override readonly name = 'UnmappedTaskError';
}

export function assertTasksMapped(
  workflow: WorkflowDefinition,
  tasks: Readonly<Record<string, TaskHandler>>,
): void {
  const missing = workflow.taskStates.filter((state) => typeof tasks[state] !== 'function');
  const unknown = Object.keys(tasks).filter((state) => !workflow.taskStates.includes(state));
  if (missing.length > 0 || unknown.length > 0) {
    throw new UnmappedTaskError(
      `${workflow.file}: ` +
        [
          missing.length > 0 ? `Task states without a local handler: ${missing.join(', ')}` : '',
          unknown.length > 0 ? `handlers for states that are not Tasks here: ${unknown.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ') +
        ' (the local runner never calls AWS)',
    );
  }
}

/**
 * Definitions already read and validated, by file: a release runs deploy-install thousands of
 * times, and validating (ajv compiling the ASL schema) would cost more than running.
 */
const loaded = new Map<string, { workflow: WorkflowDefinition; standIn: StateMachineDefinition }>();

function definitionOf(name: string, dir?: string) {
  const key = `${dir ?? ''}\0${name}`;
  let entry = loaded.get(key);
  if (!entry) {
    const workflow = loadDefinition(name, dir);
    entry = { workflow, standIn: withStandInArns(workflow.definition) as unknown as StateMachineDefinition };
    loaded.set(key, entry);
  }
  return entry;
}

/** Runs `stepfunctions/<name>.asl.json` to completion with the given input. */
export async function runWorkflow(
  name: string,
  input: unknown,
  options: RunWorkflowOptions,
): Promise<WorkflowRun> {
  const { workflow, standIn } = definitionOf(name, options.definitionsDir);
  assertTasksMapped(workflow, options.tasks);
  // A copy per run, made in this realm (structuredClone's objects fail the library's plain-object
  // test under jest's sandbox, and nested Parameters would go unresolved).
  const machine = new StateMachine(JSON.parse(JSON.stringify(standIn)) as StateMachineDefinition, {
    // Validated by loadDefinition (asl-validator) when first read.
    validationOptions: { noValidate: true },
    // Any AWS call would be a bug; point the library's own clients nowhere.
    awsConfig: {
      region: 'us-east-1',
      credentials: { accessKeys: { accessKeyId: 'none', secretAccessKey: 'none' } },
    },
  });
  const taskResourceLocalHandlers = Object.fromEntries(
    Object.entries(options.tasks).map(([state, handler]) => [
      state,
      async (value: unknown) => (await handler(value)) as never,
    ]),
  );
  const executionName =
    options.executionName ?? `local-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers, waitTimeOverrides: { ...options.waitOverrides } },
    context: {
      Execution: { Id: `local:${name}:${executionName}`, Name: executionName, Input: input as never },
      StateMachine: { Id: `arn:aws:states:us-east-1:000000000000:stateMachine:${name}`, Name: name },
      // One token for every waitForTaskToken state: a local handler that waits makes its own.
      Task: { Token: 'local-task-token' },
    } as never,
  });
  const statesEntered: string[] = [];
  const stateTypesEntered: string[] = [];
  let mapIterations = 0;
  let largestStateBytes = 0;
  const measure = (value: unknown) => {
    largestStateBytes = Math.max(largestStateBytes, Buffer.byteLength(JSON.stringify(value) ?? ''));
  };
  const collecting = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type === 'StateEntered') {
        statesEntered.push(event.state.name);
        stateTypesEntered.push(event.state.type);
        measure(event.state.input);
      } else if (event.type === 'StateExited') {
        measure(event.state.output);
      } else if (event.type === 'MapIterationStarted') {
        mapIterations += 1;
      }
    }
  })();
  const observed = () => ({ statesEntered, stateTypesEntered, mapIterations, largestStateBytes });
  try {
    const output = await execution.result;
    await collecting.catch(() => undefined);
    return { status: 'SUCCEEDED', output, ...observed() };
  } catch (error) {
    await collecting.catch(() => undefined);
    const failure = error as { name?: string; message?: string; cause?: unknown };
    const caught = failure.cause as { name?: string; message?: string } | undefined;
    return {
      status: 'FAILED',
      error: caught?.name ?? failure.name ?? 'Error',
      cause: caught?.message ?? failure.message,
      ...observed(),
    };
  }
}
