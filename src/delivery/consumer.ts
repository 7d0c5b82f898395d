/**
 * The queue consumer: each message names a task; begin it in its app's object,
 * replay it to the origin, report the result. Queues deliver at least once, so
 * everything here is safe to repeat: the object decides whether an attempt runs.
 */
import { BatchedCalls, NotStored, type NotificationCalls, type TaskCalls } from "./app-calls";
import { postNotification } from "./notify";
import { FairShare } from "./fair-share";
import { replay } from "./replay";
import { appQueue } from "../app/stubs";
import { storeNameOf } from "../shards/routing";
import {
  TASKS_PER_MESSAGE,
  taskIdsOf,
  type AttemptResult,
  type BeginResult,
  type PutBack,
  type TaskMessage,
  type TaskState,
} from "../shared/types";
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

/**
 * How long one consumer invocation delivers: Cloudflare stops a queue consumer after 15 minutes
 * of wall time, and an attempt it stops mid-way would be left to its lease and counted as timed
 * out. After this no unit begins, and attempts still running are cut and given back (PutBack):
 * the minute left covers their put-backs, the finishes on their way and a notification's POST
 * (30 s at most) begun just before. An app's timeout may be 15 minutes, longer than any consumer
 * can wait: a task cut MAX_PUT_BACKS times in a row (app/state-machine.ts) then counts a timed-out attempt.
 */
export const CONSUMER_BUDGET_MS = 14 * 60_000;

export interface ConsumeOptions {
  /** How long this invocation delivers before it stops and gives back what runs. @default CONSUMER_BUDGET_MS */
  budgetMs?: number;
}

/** One task (or notification) of a message: the unit the consumer runs, 6 at a time. */
interface Unit {
  message: Message<unknown>;
  ref: TaskMessage;
  id: string;
  /** Names this unit's begin in the app's object, so a put-back gives back its attempt and no other. */
  run: string;
}

/** How a unit ended: reported, failed to reach its object (retried with backoff), or given back (retried at once). */
type Settled = "done" | "failed" | "put_back";

/**
 * Runs every task of the batch, 6 at a time, the slots shared fairly between apps (FairShare:
 * a slow origin holds at most its share). Begins and finishes of one app are batched
 * (delivery/app-calls.ts): a worker hands its origin's result on and takes the next task while
 * the finish is on its way. A message is acked once all of its tasks are reported, and retried
 * when one of them could not reach its app's object or was given back at the deadline (the
 * others, run again, find their task running or finished: the object decides, so repeating is
 * safe).
 */
export async function consumeTasks(
  batch: MessageBatch<unknown>,
  env: Env,
  options: ConsumeOptions = {},
): Promise<void> {
  meters.queue_reads += batch.messages.length;
  const units: Unit[] = [];
  const open = new Map<Message<unknown>, { left: number; outcome: Settled }>();
  for (const message of batch.messages) {
    if (!isTaskMessage(message.body)) {
      log("error", "malformed_message", { message: message.id });
      message.ack();
      meters.queue_acks++;
      continue;
    }
    const ids = message.body.notify ? [message.body.id] : taskIdsOf(message.body);
    open.set(message, { left: ids.length, outcome: "done" });
    for (const id of ids) units.push({ message, ref: message.body, id, run: crypto.randomUUID() });
  }
  // The deadline: past it nothing begins, and the attempts running are cut (see CONSUMER_BUDGET_MS).
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), options.budgetMs ?? CONSUMER_BUDGET_MS);
  // Not awaited: the claims only keep the tasks further back from being taken for lost, and the
  // first attempts need not wait for them.
  const claimed = claimBatch(units, env);
  const settle = (unit: Unit, outcome: Settled) => {
    const state = open.get(unit.message)!;
    state.left--;
    if (outcome === "failed" || state.outcome === "done") state.outcome = outcome;
    if (state.left > 0) return;
    if (state.outcome === "done") {
      unit.message.ack();
      meters.queue_acks++;
    } else {
      // A message given back comes again at once: nothing failed, no attempt was counted.
      const failed = state.outcome === "failed";
      unit.message.retry({ delaySeconds: failed ? Math.min(60, 2 ** unit.message.attempts) : 0 });
      meters.queue_retries++;
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
    settle(unit, "failed");
  };
  const calls = new Map<string, BatchedCalls>();
  // By the object that stores the task: the app's own, or one of its shards.
  const callsFor = (store: string) => {
    let appCalls = calls.get(store);
    if (!appCalls) calls.set(store, (appCalls = new BatchedCalls(() => appQueue(env, store))));
    return appCalls;
  };
  const reports: Promise<void>[] = [];
  const slots = new FairShare(
    CONCURRENCY,
    units.map((unit) => ({ app: unit.ref.app, unit })),
  );
  const worker = async () => {
    // A worker is a slot: free, it takes the unit FairShare picks, until none waits or the deadline.
    while (!deadline.signal.aborted) {
      const next = slots.take();
      if (!next) return;
      const unit = next.unit;
      try {
        const appCalls = callsFor(storeNameOf(unit.ref.app, unit.id));
        const { reported } = unit.ref.notify
          ? await runNotification(unit.ref, unit.ref.notify, appCalls)
          : await runAttempt(unit, appCalls, env, deadline.signal);
        reports.push(reported.then((outcome) => settle(unit, outcome), failed(unit)));
      } catch (error) {
        failed(unit)(error);
      } finally {
        slots.release(next.app);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, units.length) }, worker));
  clearTimeout(timer);
  // The deadline came: what never began goes back to the queue, and costs no attempt.
  for (const unit of slots.drain()) settle(unit, "put_back");
  // Nothing more will join the finishes gathered: send them now.
  for (const appCalls of calls.values()) appCalls.flush();
  await Promise.all([...reports, claimed]);
}

/**
 * Tells each app's object which of its tasks this batch holds (one RPC per app), so tasks
 * waiting their turn behind slow origins are not taken for lost and sent again.
 */
async function claimBatch(units: Unit[], env: Env): Promise<void> {
  const byStore = new Map<string, string[]>();
  for (const unit of units) {
    if (unit.ref.notify) continue;
    const store = storeNameOf(unit.ref.app, unit.id);
    const ids = byStore.get(store) ?? [];
    ids.push(unit.id);
    byStore.set(store, ids);
  }
  await Promise.all(
    [...byStore].map(([store, ids]) =>
      appQueue(env, store)
        .claim(ids, units.length)
        .catch((error: unknown) => log("warn", "claim_failed", { store, tasks: ids.length }, error)),
    ),
  );
}

/**
 * Begins the unit's attempt and replays it to the origin; resolves once the origin has answered,
 * with `reported` settling when the object has its result. An attempt the deadline cuts before
 * the origin answered (and before the task's own timeout) is given back, not reported; so are
 * the attempts a begin whose answer was lost may have begun.
 */
async function runAttempt(
  unit: Unit,
  calls: TaskCalls,
  env: Env,
  cut: AbortSignal,
): Promise<{ reported: Promise<Settled> }> {
  const ref: TaskMessage = { app: unit.ref.app, id: unit.id };
  let begun: BeginResult;
  try {
    begun = await calls.begin(ref.id, unit.run);
  } catch (error) {
    // The object may have begun it and its answer was lost: without a put-back the attempt would
    // wait out its lease and count as timed out, with no request ever sent.
    await calls.putBackUnanswered(ref.id, unit.run).catch((putBackError: unknown) => {
      log("warn", "put_back_failed", { app: ref.app, task: ref.id }, putBackError);
    });
    throw error;
  }
  if (!begun.run) {
    if (begun.reason === "error") throw new NotStored(`begin of ${ref.id} was not stored`);
    return { reported: Promise.resolve("done") };
  }
  const startedMs = Date.now();
  const { attempt, timeoutMs } = begun.delivery;
  const result = await replay(begun.delivery, startedMs, cut);
  const durationMs = Date.now() - startedMs;
  if (result.kind === "error" && cut.aborted && durationMs < timeoutMs) {
    const putBack: PutBack = { kind: "put_back", run: unit.run, reason: "deadline" };
    return { reported: report(ref, attempt, putBack, durationMs, calls, env).then(() => "put_back") };
  }
  return { reported: report(ref, attempt, result, durationMs, calls, env).then(() => "done") };
}

/** Reports an attempt's result: the origin has answered, so it is not dropped for a passing failure to reach the object. */
async function report(
  ref: TaskMessage,
  attempt: number,
  result: AttemptResult | PutBack,
  durationMs: number,
  calls: TaskCalls,
  env: Env,
): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      // A fresh stub for each retry: a stub that saw the object reset may stay broken.
      const finished = await (tries === 1 ? calls : appQueue(env, storeNameOf(ref.app, ref.id))).finish(
        ref.id,
        attempt,
        result,
      );
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
  result: AttemptResult | PutBack,
  durationMs: number,
  state: TaskState | null,
): void {
  const mode = env.LOG_ATTEMPTS;
  const succeeded = state === 10;
  if (mode === "none" || (succeeded && mode !== "all")) return;
  const outcome =
    state === null
      ? "not_applied"
      : result.kind === "put_back"
        ? "put_back"
        : state === 10
          ? "success"
          : state === 11
            ? "failed"
            : state === 0
              ? "retry"
              : "not_applied";
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
): Promise<{ reported: Promise<Settled> }> {
  const begun = await calls.beginNotification(ref.id, kind);
  if (!begun) return { reported: Promise.resolve("done") };
  const { delivered, detail } = await postNotification(begun);
  return { reported: calls.finishNotification(ref.id, kind, begun.attempt, delivered, detail).then(() => "done") };
}
