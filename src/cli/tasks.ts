/** `asyncgate tasks …`: list an app's tasks; get, cancel, retry or wait for one. How a record's bodies print. */
import { AsyncgateError, TaskState, decodeBody, type TaskRecord } from "../client/index";
import {
  UsageError,
  durationFlag,
  endpointOf,
  isConnectionError,
  json,
  sleep,
  string,
  timeFlag,
  type Command,
  type Context,
  type Option,
  type Values,
} from "./context";

const STATE_NAMES: Record<string, number> = {
  waiting: TaskState.Waiting,
  doing: TaskState.Doing,
  success: TaskState.Success,
  failed: TaskState.Failed,
};

function taskState(text: string): number {
  const state = STATE_NAMES[text.toLowerCase()] ?? Number(text);
  if (!Object.values(TaskState).includes(state as 0))
    throw new UsageError("--state must be waiting, doing, success, failed (or 0, 1, 10, 11)");
  return state;
}

/** `--body`, shared by every command that prints a whole task record. */
export const BODY_OPTION: Option = {
  type: "string",
  value: "text|json|base64",
  description: "how bodies print: text (the default), json, or base64 (the record exactly as the API answers)",
};

/** What `--body` prints, for the help of the commands that take it. */
export const BODY_NOTES = [
  "--body: request.body and response.body stay base64 in every mode; text adds body_text (the body as text) beside\n" +
    "  each when its bytes are UTF-8, json adds body_json (the parsed value) when they are JSON, else body_text too",
];

/** The exit codes of the commands that wait, for their help. */
export const WAIT_EXIT =
  "exit codes: 0 the task succeeded (state 10), 3 it failed (state 11; its record is still printed),\n" +
  "  1 the gateway refused, failed or could not be reached, or --timeout passed";

type BodyMode = "text" | "json" | "base64";

function bodyMode(values: Values): BodyMode {
  const mode = string(values, "body") ?? "text";
  if (mode !== "text" && mode !== "json" && mode !== "base64")
    throw new UsageError(`--body must be text, json or base64 (got ${JSON.stringify(mode)})`);
  return mode;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A request or response with its body readable too: `body_text` or `body_json` beside the base64 `body`. */
function readable<T extends { body: string }>(part: T, mode: BodyMode): T {
  if (mode === "base64" || typeof part.body !== "string") return part;
  let text: string;
  try {
    text = utf8.decode(decodeBody(part.body));
  } catch {
    return part; // not UTF-8 (or not base64): base64 only
  }
  if (mode === "json" && text.trim() !== "") {
    try {
      return { ...part, body_json: JSON.parse(text) as unknown };
    } catch {
      // not JSON: as text
    }
  }
  return { ...part, body_text: text };
}

/** Prints a task record as `--body` says. */
export function printRecord(context: Context, task: TaskRecord): void {
  const mode = bodyMode(context.values);
  if (mode === "base64") return context.out(json(task));
  const { request, response } = task;
  context.out(
    json({
      ...task,
      ...(request ? { request: readable(request, mode) } : {}),
      ...(response ? { response: readable(response, mode) } : {}),
    }),
  );
}

export const tasksCommands: Record<string, Command> = {
  "tasks list": {
    usage:
      "asyncgate tasks list <app> [--state waiting|doing|success|failed] [--after <unix s|ISO time>] [--before <unix s|ISO time>] [--limit N]",
    summary: "an app's tasks, newest first, without bodies (JSON lines)",
    options: {
      state: { type: "string", value: "waiting|doing|success|failed", description: "only tasks in this state" },
      after: { type: "string", value: "<unix s|ISO time>", description: "only tasks created after this time" },
      before: { type: "string", value: "<unix s|ISO time>", description: "only tasks created before this time" },
      limit: { type: "string", value: "N", description: "stop after N tasks (default: all, page by page)" },
    },
    args: [1, 1],
    examples: [
      "asyncgate tasks list demo --state failed --limit 10",
      "asyncgate tasks list demo --after 2026-12-01T00:00:00Z | jq -r .id",
    ],
    async run({ values, args, client, out, signal }) {
      const limit = values["limit"] === undefined ? Infinity : Number(values["limit"]);
      if (!(limit > 0)) throw new UsageError("--limit must be a positive number");
      const state = values["state"] === undefined ? undefined : taskState(string(values, "state")!);
      let printed = 0;
      const createdAfter = timeFlag(values, "after");
      const createdBefore = timeFlag(values, "before");
      for await (const task of client().listTasks(args[0]!, {
        state,
        createdAfter,
        createdBefore,
        pageSize: Math.min(100, limit),
        signal,
      })) {
        out(json(task));
        if (++printed >= limit) break;
      }
      return 0;
    },
  },
  "tasks get": {
    usage: "asyncgate tasks get <task id> [--body text|json|base64]",
    summary: "a task's record, request and response included",
    options: { body: BODY_OPTION },
    args: [1, 1],
    notes: BODY_NOTES,
    examples: [
      "asyncgate tasks get 01a2134573220000000133d9a175df51",
      "asyncgate tasks get <id> --body json | jq .response.body_json",
    ],
    async run(context) {
      bodyMode(context.values);
      printRecord(context, await context.client().getTask(context.args[0]!));
      return 0;
    },
  },
  "tasks cancel": {
    usage: "asyncgate tasks cancel <task id>",
    summary: "cancel a waiting task",
    args: [1, 1],
    examples: ["asyncgate tasks cancel 01a2134573220000000133d9a175df51"],
    async run({ args, client, out }) {
      out(json(await client().cancel(args[0]!)));
      return 0;
    },
  },
  "tasks retry": {
    usage: "asyncgate tasks retry <task id>",
    summary: "run a failed task again",
    args: [1, 1],
    examples: ["asyncgate tasks retry 01a2134573220000000133d9a175df51"],
    async run({ args, client, out }) {
      out(json(await client().retry(args[0]!)));
      return 0;
    },
  },
  "tasks wait": {
    usage: "asyncgate tasks wait <task id> [--timeout 60s] [--body text|json|base64]",
    summary: "wait until a task finishes; prints its record (exit 3 if it failed)",
    options: {
      timeout: { type: "string", value: "<duration>", description: "give up after this long, exit 1 (default 60s)" },
      body: BODY_OPTION,
    },
    args: [1, 1],
    examples: ["asyncgate tasks wait 01a2134573220000000133d9a175df51 --timeout 5m && echo done"],
    notes: [...BODY_NOTES, WAIT_EXIT],
    run: (context) => waitFor(context, context.args[0]!),
  },
};

/** `--timeout` in seconds (default 60) and `--body`, checked: a usage error when malformed. */
export function checkWaitFlags(values: Values): number {
  bodyMode(values);
  const timeout = string(values, "timeout");
  return timeout === undefined ? 60 : durationFlag(timeout, "--timeout");
}

/**
 * `tasks wait` and `submit --wait`: polls until the task finishes (backing off from 200 ms to 2 s),
 * prints its record, and answers 3 when it failed. A gateway unreachable at the first poll is an
 * error at once; one lost after it answered (`answered`: submit's own answer counts) is retried
 * until the timeout, said once on stderr.
 */
export async function waitFor(context: Context, id: string, answered = false): Promise<number> {
  const { values, signal } = context;
  const deadline = Date.now() + checkWaitFlags(values) * 1000;
  let interval = 200;
  let lost = 0; // polls failed in a row
  for (;;) {
    signal.throwIfAborted();
    let task: TaskRecord;
    try {
      task = await context.client().getTask(id);
      answered = true;
      lost = 0;
    } catch (error) {
      if (!answered || !isConnectionError(error) || Date.now() >= deadline || signal.aborted) throw error;
      if (lost === 0)
        context.err(
          `asyncgate ${context.command}: lost the gateway at ${endpointOf(context.env)}; retrying until the --timeout`,
        );
      await sleep(Math.min(250 * 2 ** lost++, 2_000, Math.max(1, deadline - Date.now())), signal);
      continue;
    }
    if (task.state === TaskState.Success || task.state === TaskState.Failed) {
      printRecord(context, task);
      return task.state === TaskState.Failed ? 3 : 0;
    }
    if (Date.now() + interval > deadline)
      throw new AsyncgateError(408, "wait_timeout", `task ${id} still in state ${task.state}`, null);
    await sleep(interval, signal);
    interval = Math.min(2_000, interval * 1.5);
  }
}
