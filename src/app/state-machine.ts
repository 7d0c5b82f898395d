/**
 * The task state machine: 0 waiting → 1 doing → 10 success | 11 failed, with retries back
 * to 0. Queues deliver at least once and in no order, so `begin` and `finishAttempt` are
 * idempotent and keyed by the attempt number: a duplicate message never re-runs a finished
 * task, and a stale `finish` never counts twice. Synchronous SQLite work only: it runs
 * inside the object's group commit.
 */
import type { AppConfig } from "../config/app-config";
import { LEASE_GRACE_MS } from "./outbox";
import { signalOf, type AttemptSignal } from "./limits";
import type { AppStore, AttemptRecord, TaskRow } from "./store";
import { jitteredBackoffSeconds, mayRetry } from "../config/retry-policy";
import { headerValues } from "../http/headers";
import type { AttemptResult, BeginResult, FinishResult, PutBack, TaskState } from "../shared/types";

/**
 * A task row must stay under SQLite's 2 MB row limit in production (Miniflare does not
 * enforce it): the stored origin response gets what the request left of this budget.
 */
export const ROW_BUDGET_BYTES = 1_950_000;

/** How many bytes of an origin response body fit beside a task's request. Pure. */
export function responseBodyRoom(task: { body: ArrayBuffer; header: string }, responseHeaderJson: string): number {
  return Math.max(0, ROW_BUDGET_BYTES - task.body.byteLength - task.header.length - responseHeaderJson.length - 4096);
}

/** An origin that answers with this header set to `true` asks not to be retried, whatever the status. */
export const NO_RETRY_HEADER = "Asyncgate-No-Retry";

/** Whether a failed response ends the task at once: a status the app lists, or the origin says so. Pure. */
export function isFinalFailure(config: AppConfig, status: number, header: Record<string, string[]>): boolean {
  if (config.retry.no_retry_statuses.includes(status)) return true;
  const value = headerValues(header, NO_RETRY_HEADER)?.[0];
  return value?.trim().toLowerCase() === "true";
}

/**
 * How long a 429 or 503 asks to wait (`Retry-After`: seconds, or an HTTP date), in ms from
 * `nowMs`, capped at `maxMs`; null when the response asks nothing. Pure.
 */
export function retryAfterMs(
  status: number,
  header: Record<string, string[]>,
  nowMs: number,
  maxMs: number,
): number | null {
  if (status !== 429 && status !== 503) return null;
  const value = headerValues(header, "retry-after")?.[0]?.trim();
  if (!value) return null;
  let ms: number;
  if (/^\d+$/.test(value)) ms = Number(value) * 1000;
  else {
    const at = Date.parse(value);
    if (Number.isNaN(at)) return null;
    ms = at - nowMs;
  }
  return Math.min(Math.max(0, ms), maxMs);
}

/**
 * Put-backs (PutBack) of one task in a row, with no attempt of it ending between them, after which
 * the next one counts as a timed-out attempt: an origin slower than any consumer's deadline would
 * otherwise be cut and given back until retention. A restart forgets the count.
 */
export const MAX_PUT_BACKS = 3;

/** What the machine needs from the object that runs it. */
export interface MachineHost {
  store(): AppStore;
  config(): AppConfig | null;
  /** The secrets that sign deliveries now (the current one first); null when the object is no app. */
  signingSecrets(): string[] | null;
  /** A task reached 10 or 11 with result number `seq`: tell subscribers once committed. */
  announce(task: TaskRow, seq: number): void;
  /** The origin asked for no attempts of this app before `untilMs`. */
  hold(untilMs: number): void;
  /** Whether an attempt of `taskId` may start now under the app's limits (takes its share if so). */
  admit(taskId: string, now: number): boolean;
  /** An attempt ended: whether the origin worked (for the circuit breaker) and how long it took. */
  attemptEnded(signal: AttemptSignal, detail: string, durationMs: number, now: number): void;
  /** A task finished `latencyMs` after it was submitted. */
  taskFinished(latencyMs: number): void;
  /** A running task ended without its attempt ending (expired): what the attempt held is let go. */
  released(taskId: string, now: number): void;
}

export class StateMachine {
  readonly #host: MachineHost;

  constructor(host: MachineHost) {
    this.#host = host;
  }

  /**
   * 0 → 1 when the task is due and the app active; otherwise says why not. `run` names the begin
   * for a later put-back (the consumer's batched begins).
   */
  begin(taskId: string, now: number, run?: string): BeginResult {
    const config = this.#host.config();
    const signingSecrets = this.#host.signingSecrets();
    const { tasks: store, notifications } = this.#host.store();
    if (!config || signingSecrets === null) return { run: false, reason: "app_not_found" };
    let task = store.get(taskId);
    if (!task) return { run: false, reason: "task_not_found" };
    if (task.state === 1) {
      if (task.lease_ms !== null && task.lease_ms > now) return { run: false, reason: "running" };
      this.attemptLost(task, now);
      task = store.get(taskId)!;
    }
    if (task.state === 10 || task.state === 11) return { run: false, reason: "finished" };
    if (config.state === "Paused") {
      store.clearDispatched([taskId]);
      return { run: false, reason: "paused" };
    }
    if (task.eta_ms > now) return { run: false, reason: "not_due" };
    if (!this.#host.admit(taskId, now)) {
      // Held, over a limit or behind an open circuit: the outbox sends it again when they allow.
      store.clearDispatched([taskId]);
      return { run: false, reason: "deferred" };
    }

    const attempt = task.attempts + 1;
    const timeoutMs = (task.timeout ?? config.timeout) * 1000;
    store.markDoing(taskId, attempt, now, now + timeoutMs + LEASE_GRACE_MS, run);
    return {
      run: true,
      delivery: {
        app: config.name,
        taskId,
        attempt,
        request: {
          method: task.method,
          path: task.path,
          raw_query: task.raw_query,
          header: JSON.parse(task.header) as Record<string, string[]>,
          body: new Uint8Array(task.body),
        },
        origin: config.origin,
        timeoutMs,
        etaMs: task.eta_ms,
        executions: task.executions,
        previousStatus: task.last_status,
        retryReason: task.retry_reason,
        taskHeaders: config.task_headers,
        failFast: task.fail_fast === 1,
        signingSecrets,
      },
    };
  }

  /**
   * Records attempt `attempt`'s result; ignored unless that attempt is the one running. A
   * put-back gives the attempt back instead (see PutBack): only the run it names, never counted.
   */
  finishAttempt(taskId: string, attempt: number, result: AttemptResult | PutBack, now: number): FinishResult {
    const config = this.#host.config();
    const { tasks: store, notifications } = this.#host.store();
    let task = config ? store.get(taskId) : null;
    if (!config || !task) return { applied: false, state: null };
    if (result.kind === "put_back") {
      // Not adopted after a restart: the object forgot the attempt, which gave it back already.
      if (task.state !== 1 || !store.runs(taskId, result.run)) return { applied: false, state: task.state };
      if (store.timesGivenBack(taskId) >= MAX_PUT_BACKS) {
        const reason = `given back ${MAX_PUT_BACKS} times in a row (${result.reason}), then counted`;
        return { applied: true, state: this.attemptLost(task, now, reason) };
      }
      store.putBack(taskId, now);
      // Not an attempt: the circuit and the statistics learn nothing; a probe it was is let go.
      this.#host.released(taskId, now);
      return { applied: true, state: 0 };
    }
    // An attempt begun before a restart (running attempts are kept in memory): taken once.
    const leaseMs = now + (task.timeout ?? config.timeout) * 1000 + LEASE_GRACE_MS;
    if (task.state === 0 && store.adopt(taskId, attempt, now, leaseMs)) task = store.get(taskId)!;
    if (task.state !== 1 || task.attempts !== attempt) return { applied: false, state: task.state };
    const state = this.#recordAttempt(config, task, result, now);
    // In memory (circuit, statistics) only once the writes went through: an operation that throws
    // is undone, and tried again without its body, without being counted twice.
    this.#host.attemptEnded(
      signalOf(result.kind === "response" ? { status: result.status } : { error: result.error }),
      result.kind === "response" ? `HTTP ${result.status}` : result.error,
      now - this.#attemptStartedMs(task, config),
      now,
    );
    return { applied: true, state };
  }

  /** The running attempt's result, written with the transition it causes; the task's new state. */
  #recordAttempt(config: AppConfig, task: TaskRow, result: AttemptResult, now: number): TaskState {
    const taskId = task.id;
    if (result.kind === "response") {
      const success = result.status >= 200 && result.status <= 299;
      const room = responseBodyRoom(task, JSON.stringify(result.header));
      const kept = result.body.byteLength > room ? { ...result, body: result.body.subarray(0, room) } : result;
      const record: AttemptRecord = {
        atMs: now,
        outcome: kept,
        error: null,
        retryReason: success ? null : `HTTP ${result.status}`,
      };
      if (success) {
        this.end(taskId, 1, 10, now, undefined, record);
        return 10;
      }
      if (isFinalFailure(config, result.status, result.header)) {
        this.end(taskId, 1, 11, now, undefined, record);
        return 11;
      }
      const wait = retryAfterMs(result.status, result.header, now, config.retry.max_backoff * 1000);
      if (wait !== null) this.#host.hold(now + wait);
      return this.#retryOrFail(task, now, record, wait === null ? 0 : now + wait);
    }
    const record: AttemptRecord = {
      atMs: now,
      outcome: null,
      error: result.error,
      retryReason: `${result.error}: ${result.detail}`.slice(0, 200),
    };
    return this.#retryOrFail(task, now, record);
  }

  /**
   * Ends a task (→ 10 or 11) and queues its record for the task's callback and the app's
   * notify url, in the same transaction: a finished task's notification is never lost.
   */
  end(taskId: string, from: TaskState, state: 10 | 11, now: number, error?: string, attempt?: AttemptRecord): void {
    const config = this.#host.config()!;
    const { tasks: store, notifications } = this.#host.store();
    const seq = store.markFinished(taskId, from, state, now, error, attempt);
    // Ended without its attempt ending (expired, canceled): a probe it was is let go. A task that
    // ran before a restart reads as waiting (running attempts are kept in memory), so any state.
    if (!attempt) this.#host.released(taskId, now);
    const task = store.get(taskId);
    if (!task) return;
    this.#host.announce(task, seq);
    this.#host.taskFinished(now - task.created_ms);
    if (task.callback) notifications.add(taskId, "callback", task.callback, now);
    if (config.notify.state === "On" && config.notify.url && config.notify.events.includes("TaskFinish")) {
      notifications.add(taskId, "notify", config.notify.url, now);
    }
  }

  /** A running attempt whose lease ran out: its consumer died; count it as timed out. The task's new state. */
  attemptLost(task: TaskRow, now: number, reason = "attempt lost: no result before its lease ran out"): TaskState {
    const config = this.#host.config();
    this.#host.attemptEnded("failure", "attempt lost", config ? now - this.#attemptStartedMs(task, config) : 0, now);
    return this.#retryOrFail(task, now, { atMs: now, outcome: null, error: "timeout", retryReason: reason });
  }

  /** When the running attempt began: `begin` set its lease to start + timeout + grace. */
  #attemptStartedMs(task: TaskRow, config: AppConfig): number {
    return (task.lease_ms ?? 0) - ((task.timeout ?? config.timeout) * 1000 + LEASE_GRACE_MS);
  }

  /** A failed attempt either schedules the next one (→ 0) or ends the task (→ 11), recorded in the same write. */
  #retryOrFail(task: TaskRow, now: number, attempt: AttemptRecord, notBeforeMs = 0): TaskState {
    const config = this.#host.config()!;
    const policy = task.max_attempts === null ? config.retry : { ...config.retry, max_attempts: task.max_attempts };
    if (mayRetry(policy, task.attempts, task.first_attempt_ms ?? now, now)) {
      const backoffAt = now + Math.round(jitteredBackoffSeconds(policy, task.attempts) * 1000);
      this.#host.store().tasks.markWaiting(task.id, Math.max(backoffAt, notBeforeMs), attempt);
      return 0;
    }
    this.end(task.id, 1, 11, now, undefined, attempt);
    return 11;
  }
}
