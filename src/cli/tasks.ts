/** `asyncgate tasks …`: list an app's tasks; get, cancel, retry or wait for one. */
import { TaskState } from "../client/index";
import {
  UsageError,
  durationFlag,
  json,
  string,
  timeFlag,
  whileUnreachable,
  type Command,
  type Context,
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

export const tasksCommands: Record<string, Command> = {
  "tasks list": {
    usage:
      "asyncgate tasks list <app> [--state waiting|doing|success|failed] [--after <unix s|ISO time>] [--before <unix s|ISO time>] [--limit N]",
    summary: "an app's tasks, newest first, without bodies (JSON lines)",
    options: {
      state: { type: "string" },
      after: { type: "string" },
      before: { type: "string" },
      limit: { type: "string" },
    },
    args: [1, 1],
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
    usage: "asyncgate tasks get <task id>",
    summary: "a task's record, request and response included",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().getTask(args[0]!)));
      return 0;
    },
  },
  "tasks cancel": {
    usage: "asyncgate tasks cancel <task id>",
    summary: "cancel a waiting task",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().cancel(args[0]!)));
      return 0;
    },
  },
  "tasks retry": {
    usage: "asyncgate tasks retry <task id>",
    summary: "run a failed task again",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().retry(args[0]!)));
      return 0;
    },
  },
  "tasks wait": {
    usage: "asyncgate tasks wait <task id> [--timeout 60s]",
    summary: "wait until a task finishes; prints its record",
    options: { timeout: { type: "string" } },
    args: [1, 1],
    run: (context) => waitFor(context, context.args[0]!),
  },
};

/** `tasks wait` and `submit --wait`: polls until finished, saying so while the gateway is unreachable. */
export async function waitFor(context: Context, id: string): Promise<number> {
  const timeout = string(context.values, "timeout");
  const timeoutMs = (timeout === undefined ? 60 : durationFlag(timeout, "--timeout")) * 1000;
  const deadline = Date.now() + timeoutMs;
  const task = await whileUnreachable(
    context,
    `waiting for ${id}`,
    () => context.client().waitForTask(id, { timeoutMs: Math.max(1, deadline - Date.now()), signal: context.signal }),
    deadline,
  );
  context.out(json(task));
  return 0;
}
