/**
 * The queue consumer: each message names a task; begin it in its app's object,
 * replay it to the origin, report the result. Queues deliver at least once, so
 * everything here is safe to repeat: the object decides whether an attempt runs.
 */
import { BatchedCalls, NotStored, type NotificationCalls, type TaskCalls } from "./app-calls";
import { postNotification } from "./notify";
import { replay } from "./replay";
import { appQueue } from "../app/stubs";
import { TASKS_PER_MESSAGE, taskIdsOf, type AttemptResult, type TaskMessage, type TaskState } from "../shared/types";
import { log } from "../shared/log";
import { meters } from "../shared/meters";

/** One consumer invocation may hold at most 6 outgoing connections at once. */
const CONCURRENCY = 6;

export function isTaskMessage(body: unknown): body is TaskMessage {
  if (typeof body !== "object" || body === null) return false;
  const { app, id, more, notify } = body as Record<string, unknown>;
  if (typeof app !== "string" || typeof id !== "string") return false;
  if (notify !== undefined && notify !== "callback" && notify !== "notify") return false;
  if (more === undefined) return true;
  return (
    notify === undefined &&
    Array.isArray(more) &&
    more.length < TASKS_PER_MESSAGE &&
    more.every((item) => typeof item === "string")
  );
}

/** Tries of a `finish` RPC that fails (the object being reset or overloaded) before the lease takes over. */
const FINISH_TRIES = 4;

/** One task (or notification) of a message: the unit the consumer runs, 6 at a time. */
interface Unit {
  message: Message<unknown>;
  ref: TaskMessage;
  id: string;
}

/**
 * Runs every task of the batch, 6 at a time. Begins and finishes of one app are batched
 * (delivery/app-calls.ts): a worker hands its origin's result on and takes the next task
 * while the finish is on its way. A message is acked once all of its tasks are reported, and
 * retried when one of them could not reach its app's object (the others, run again, find
 * their task running or finished: the object decides, so repeating is safe).
 */
export async function consumeTasks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  meters.queue_reads += batch.messages.length;
  const units: Unit[] = [];
  const open = new Map<Message<unknown>, { left: number; failed: boolean }>();
  for (const message of batch.messages) {
    if (!isTaskMessage(message.body)) {
      log("error", "malformed_message", { message: message.id });
      message.ack();
      meters.queue_acks++;
      continue;
    }
    const ids = message.body.notify ? [message.body.id] : taskIdsOf(message.body);
    open.set(message, { left: ids.length, failed: false });
    for (const id of ids) units.push({ message, ref: message.body, id });
  }
  // Not awaited: the claims only keep the tasks further back from being taken for lost, and the
  // first attempts need not wait for them.
  const claimed = claimBatch(units, env);
  const settle = (unit: Unit, failed: boolean) => {
    const state = open.get(unit.message)!;
    state.left--;
    state.failed ||= failed;
    if (state.left > 0) return;
    if (state.failed) {
      unit.message.retry({ delaySeconds: Math.min(60, 2 ** unit.message.attempts) });
      meters.queue_retries++;
    } else {
      unit.message.ack();
      meters.queue_acks++;
    }
  };
  const failed = (unit: Unit) => (error: unknown) => {
    // The object could not be reached: let the queue bring the message back.
    log(
      "error",
      "message_retried",
      { app: unit.ref.app, task: unit.id, delivery_attempts: unit.message.attempts },
      error,
    );
    settle(unit, true);
  };
  const calls = new Map<string, BatchedCalls>();
  const callsFor = (app: string) => {
    let appCalls = calls.get(app);
    if (!appCalls) calls.set(app, (appCalls = new BatchedCalls(() => appQueue(env, app))));
    return appCalls;
  };
  const reports: Promise<void>[] = [];
  const pending = [...units];
  const worker = async () => {
    for (let unit = pending.shift(); unit; unit = pending.shift()) {
      try {
        const appCalls = callsFor(unit.ref.app);
        const { reported } = unit.ref.notify
          ? await runNotification(unit.ref, unit.ref.notify, appCalls)
          : await runAttempt({ app: unit.ref.app, id: unit.id }, appCalls, env);
        const done = unit;
        reports.push(reported.then(() => settle(done, false), failed(done)));
      } catch (error) {
        failed(unit)(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, pending.length) }, worker));
  // Nothing more will join the finishes gathered: send them now.
  for (const appCalls of calls.values()) appCalls.flush();
  await Promise.all([...reports, claimed]);
}

/**
 * Tells each app's object which of its tasks this batch holds (one RPC per app), so tasks
 * waiting their turn behind slow origins are not taken for lost and sent again.
 */
async function claimBatch(units: Unit[], env: Env): Promise<void> {
  const byApp = new Map<string, string[]>();
  for (const unit of units) {
    if (unit.ref.notify) continue;
    const ids = byApp.get(unit.ref.app) ?? [];
    ids.push(unit.id);
    byApp.set(unit.ref.app, ids);
  }
  await Promise.all(
    [...byApp].map(([app, ids]) =>
      appQueue(env, app)
        .claim(ids, units.length)
        .catch((error: unknown) => log("warn", "claim_failed", { app, tasks: ids.length }, error)),
    ),
  );
}

/**
 * Begins `ref`'s attempt and replays it to the origin; resolves once the origin has answered,
 * with `reported` settling when the object has its result.
 */
async function runAttempt(ref: TaskMessage, calls: TaskCalls, env: Env): Promise<{ reported: Promise<void> }> {
  const begun = await calls.begin(ref.id);
  if (!begun.run) {
    if (begun.reason === "error") throw new NotStored(`begin of ${ref.id} was not stored`);
    return { reported: Promise.resolve() };
  }
  const startedMs = Date.now();
  const result = await replay(begun.delivery);
  return { reported: report(ref, begun.delivery.attempt, result, Date.now() - startedMs, calls, env) };
}

/** Reports an attempt's result: the origin has answered, so it is not dropped for a passing failure to reach the object. */
async function report(
  ref: TaskMessage,
  attempt: number,
  result: AttemptResult,
  durationMs: number,
  calls: TaskCalls,
  env: Env,
): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      // A fresh stub for each retry: a stub that saw the object reset may stay broken.
      const finished = await (tries === 1 ? calls : appQueue(env, ref.app)).finish(ref.id, attempt, result);
      logAttempt(env, ref, attempt, result, durationMs, finished.applied ? finished.state : null);
      return;
    } catch (error) {
      if (tries >= FINISH_TRIES) throw error;
      log("warn", "finish_retried", { app: ref.app, task: ref.id, attempt, try: tries }, error);
      await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (tries - 1) * Math.random()));
    }
  }
}

/**
 * One JSON line per attempt (task id, app, attempt, status, duration, what became of the task):
 * failed and retried attempts always, successes too with `LOG_ATTEMPTS = "all"`, none with "none".
 */
function logAttempt(
  env: Env,
  ref: TaskMessage,
  attempt: number,
  result: AttemptResult,
  durationMs: number,
  state: TaskState | null,
): void {
  const mode = env.LOG_ATTEMPTS;
  const succeeded = state === 10;
  if (mode === "none" || (succeeded && mode !== "all")) return;
  const outcome = state === 10 ? "success" : state === 11 ? "failed" : state === 0 ? "retry" : "not_applied";
  const fields = {
    app: ref.app,
    task: ref.id,
    attempt,
    status: result.kind === "response" ? result.status : null,
    error: result.kind === "error" ? result.error : null,
    duration_ms: durationMs,
    outcome,
  };
  log(succeeded ? "info" : "warn", "attempt", fields);
}

/** One POST of a finished task's record; resolves once the receiver answered, `reported` once the object knows. */
async function runNotification(
  ref: TaskMessage,
  kind: "callback" | "notify",
  calls: NotificationCalls,
): Promise<{ reported: Promise<void> }> {
  const begun = await calls.beginNotification(ref.id, kind);
  if (!begun) return { reported: Promise.resolve() };
  const { delivered, detail } = await postNotification(begun);
  return { reported: calls.finishNotification(ref.id, kind, begun.attempt, delivered, detail) };
}
