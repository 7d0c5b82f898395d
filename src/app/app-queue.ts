/**
 * AppQueue: one Durable Object per app. It owns the app's config, its task
 * records and the outbox that feeds the Cloudflare Queue, in SQLite.
 *
 * Durability: a task is answered with its id only after the insert commits. The
 * queue message is sent right after the insert with no `await` between, so the
 * object's output gate holds the send until the write is durable; the row is
 * marked dispatched in the same transaction. Should the send fail (or the message
 * be lost, as local Queues lose theirs on restart), the alarm sends it again.
 *
 * Queues deliver at least once and in no order, so `begin` and `finish` are an
 * idempotent state machine keyed by the attempt number: a duplicate message never
 * re-runs a finished task, and a stale `finish` never counts twice.
 */
import { DurableObject } from "cloudflare:workers";
import { AppKeys, type CreatedKey, type KeyView } from "./app-keys";
import { applyPatch, type AppConfig, type ConfigRules } from "./config";
import { checkAt } from "./heartbeat";
import { Subscribers } from "./subscribers";
import { TaskStore, toRecord, type NotificationKind, type NotificationRow, type ReadMeter, type TaskRow } from "./task-store";
import { GatewayError, errorBody, fail, ok, type Outcome } from "../http/errors";
import type { Permission } from "../auth/access-keys";
import { ADMIN, type Caller, type Principal } from "../auth/authenticate";
import { masterSecret } from "../auth/key-vault";
import { jitteredBackoffSeconds, mayRetry, retryLifetimeSeconds } from "../delivery/backoff";
import type { RetryPolicy } from "./config";
import { newTaskId } from "../shared/task-id";
import type { SubmitOptions } from "../submit/options";
import type {
  AttemptResult,
  BeginResult,
  FinishResult,
  NotificationDelivery,
  RecordedRequest,
  TaskMessage,
  TaskRecord,
  TaskState,
} from "../shared/types";

/**
 * A sent message whose task has not begun after this long, and that no consumer has claimed,
 * is presumed lost and sent again (local Queues lose theirs when `wrangler dev` restarts). A
 * message merely slow to arrive is then sent twice, which the state machine shrugs off.
 */
export const REDISPATCH_AFTER_MS = 30_000;
/** Extra time past an attempt's timeout before its consumer is presumed gone. */
export const LEASE_GRACE_MS = 30_000;
/** Queue messages in flight per app: the object keeps the backlog, the queue a bounded window. */
export const DISPATCH_WINDOW = 500;
/**
 * A task row must stay under SQLite's 2 MB row limit in production (Miniflare does not
 * enforce it): the stored origin response gets what the request left of this budget.
 */
export const ROW_BUDGET_BYTES = 1_950_000;

/** How many bytes of an origin response body fit beside a task's request. Pure. */
export function responseBodyRoom(task: { body: ArrayBuffer; header: string }, responseHeaderJson: string): number {
  return Math.max(0, ROW_BUDGET_BYTES - task.body.byteLength - task.header.length - responseHeaderJson.length - 4096);
}

/** Notifications (callbacks and the app's notify url): how long one POST may take, and its retries. */
export const NOTIFY_TIMEOUT_MS = 30_000;
export const NOTIFY_RETRY: RetryPolicy = { max_attempts: 10, min_backoff: 1, max_backoff: 600, max_doublings: 10, max_retry_duration: 0 };

/** Tasks expired, and finished tasks deleted, per alarm at most. */
export const RETENTION_BATCH = 500;

/** How long concurrent calls are gathered into one commit (0: whatever arrived in this turn). */
export const GROUP_COMMIT_MS = 0;

/** Retry delays for a failing queue send: doubling from 1 s to 5 min while it keeps failing. */
const SEND_RETRY_MIN_MS = 1_000;
const SEND_RETRY_MAX_MS = 300_000;
/** One consumer invocation replays at most this many origins at once (delivery/consumer.ts). */
const CONSUMER_CONCURRENCY = 6;

/** Outcome of a submission whose write failed: a full object is no reason to retry. */
export function storageFailure(error: unknown): Outcome<never> {
  const message = error instanceof Error ? error.message : String(error);
  if (/SQLITE_FULL|database or disk is full|storage.*(limit|full|exceeded)/i.test(message)) {
    return fail(507, "storage_full", "this app's storage is full (10 GB per app): lower its retention or delete it and start afresh");
  }
  return fail(503, "unavailable", "the task could not be stored; retry");
}

/** What is stored about the app besides its config. */
export interface AppIdentity {
  number: number;
  createdMs: number;
  signingSecret: string;
}

export interface SubmitInput {
  /** Who submits: the admin (verified by the Worker) or a key of this app, verified here. */
  caller: Caller;
  reqId: string;
  request: RecordedRequest;
  options: SubmitOptions;
}

export interface Submitted {
  id: string;
  deduplicated: boolean;
}

export interface TaskPage {
  tasks: TaskRecord[];
  cursor: string | null;
}

export class AppQueue extends DurableObject<Env> {
  #store: TaskStore;
  #keys: AppKeys;
  #config: AppConfig | null = null;
  #identity: AppIdentity | null = null;
  readonly #subscribers: Subscribers;
  /** Submissions, begins and finishes waiting for the next group commit. */
  #operations: { run: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }[] = [];
  /** Result frames for subscribers, sent once the writes that made them are committed. */
  #pendingBroadcasts: string[] = [];
  /** New tasks marked dispatched in the current group, sent once it is committed. */
  #pendingSends: string[] = [];
  /** Free queue-window slots in the current group; undefined until a submission counts them. */
  #windowSlots: number | undefined = undefined;
  /** The alarm time as last set by this instance; avoids a storage write per submit. */
  #alarmAt: number | null = null;
  /** When the oldest unfinished task expires (never later than the truth); undefined = look it up. */
  #retentionDueAt: number | null | undefined = undefined;
  /** Consecutive failed queue sends: the retry delay doubles with each. */
  #sendFailures = 0;
  /** While the queue keeps refusing, the outbox waits until then (0: not waiting). */
  #sendRetryAt = 0;
  /**
   * Tasks whose queue message a consumer has taken, until when it may still begin them. Kept in
   * memory only: after an eviction a held message may be sent again, which the state machine
   * shrugs off (a duplicate never runs a task twice).
   */
  readonly #claims = new Map<string, number>();
  /** When subscriber heartbeats must next be checked; undefined = not known since wake-up. */
  #subscriberCheckAt: number | null | undefined = undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Runs on every wake-up, so it stays cheap: schema check, two small reads.
    this.#store = new TaskStore(ctx.storage.sql);
    this.#keys = new AppKeys(ctx.storage.sql, masterSecret(env));
    this.#subscribers = new Subscribers(ctx);
    this.#loadConfig();
    void ctx.blockConcurrencyWhile(async () => {
      this.#alarmAt = await ctx.storage.getAlarm();
      // Local dev does not persist alarms across restarts (workerd#2927): re-arm from SQLite.
      if (this.#alarmAt === null) await this.#scheduleNext();
    });
  }

  #loadConfig(): void {
    const config = this.#store.getMeta("config");
    const identity = this.#store.getMeta("identity");
    this.#config = config ? (JSON.parse(config) as AppConfig) : null;
    this.#identity = identity ? (JSON.parse(identity) as AppIdentity) : null;
  }

  // ---- who may do what ----------------------------------------------------------------

  /**
   * Verifies a caller against this app: the admin was verified by the Worker; a key of this
   * app is verified here, with its secret, and must hold `permission`. Unknown keys (and every
   * key of an app that does not exist) are 401, so a forged key learns nothing.
   */
  async #authorize(caller: Caller, permission: Permission | null, taskBody: Uint8Array | null = null): Promise<Outcome<Principal>> {
    if (caller.kind === "admin") return ok(ADMIN);
    const config = this.#config;
    const body = caller.body ?? taskBody ?? new Uint8Array(0);
    const principal = config && caller.app === config.name ? await this.#keys.verify(config.name, caller.proof, body) : null;
    if (!principal) return fail(401, "bad_token", "bad access key or signature");
    if (permission !== null && !principal.permissions.includes(permission)) {
      return fail(403, "forbidden", `this key may not ${permission} on app ${principal.app}`);
    }
    return ok(principal);
  }

  /** Verifies a key of this app for a request about something else (another app, the app list). */
  async identify(caller: Caller, body: Uint8Array): Promise<Outcome<Principal>> {
    return this.#authorize(caller, null, body);
  }

  // ---- app entry -------------------------------------------------------------------

  /** Makes this object the app `config.name`. 409 when it already is an app. */
  async configure(config: AppConfig, identity: AppIdentity): Promise<Outcome<AppConfig>> {
    if (this.#config) return fail(409, "app_exists", `app ${config.name} already exists`);
    this.#store.setMeta("config", JSON.stringify(config));
    this.#store.setMeta("identity", JSON.stringify(identity));
    this.#loadConfig();
    return ok(config);
  }

  /** The app's config and task counts (`GET /v1/apps/<name>`): never a secret. */
  async describe(caller: Caller): Promise<Outcome<{ config: AppConfig; stats: Record<string, number> }>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    return ok({ config: this.#config, stats: this.#store.counts() });
  }

  /** Applies a validated partial update; resuming a paused app starts its waiting tasks. */
  async patchConfig(caller: Caller, patch: unknown, rules: ConfigRules): Promise<Outcome<AppConfig>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    const current = this.#config;
    if (!current) return fail(404, "app_not_found", "no such app");
    let next: AppConfig;
    try {
      next = applyPatch(current, patch, rules);
    } catch (error) {
      if (error instanceof GatewayError) return fail(error.status, error.code, error.message);
      throw error;
    }
    this.#store.setMeta("config", JSON.stringify(next));
    this.#config = next;
    if (current.state !== next.state) {
      // Messages sent before a pause were dropped by `begin`; send every waiting task afresh.
      this.#store.forgetAllDispatches();
      if (next.state === "Active") await this.#flushOutbox();
    }
    await this.#scheduleNext();
    return ok(next);
  }

  /** The largest page the resume replay read since the object started: rows and bytes. */
  async replayReadMeter(): Promise<ReadMeter> {
    return { ...this.#store.largestReplayPage };
  }

  /** Whether this object is an app (a name the registry holds may have failed to configure). */
  async exists(): Promise<boolean> {
    return this.#config !== null;
  }

  /** Deletes the app: config, tasks, keys and alarm. New submissions find no app at once. */
  async destroy(caller: Caller): Promise<Outcome<null>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    for (const ws of this.#subscribers.open()) this.#subscribers.onClose(ws, 4404, "app deleted");
    this.#config = null;
    this.#identity = null;
    await this.ctx.storage.deleteAlarm();
    // Result seqs survive the app: a client resuming with a seq of the old app must not
    // drop the new app's results as already seen.
    const seq = this.#store.currentSeq();
    await this.ctx.storage.deleteAll();
    this.#alarmAt = null;
    this.#retentionDueAt = undefined;
    this.#subscriberCheckAt = undefined;
    // deleteAll drops the tables too; this instance may live on and serve a new app of the same name.
    this.#store = new TaskStore(this.ctx.storage.sql);
    this.#keys = new AppKeys(this.ctx.storage.sql, masterSecret(this.env));
    this.#store.setMeta("seq", String(seq));
    return ok(null);
  }

  // ---- access keys -------------------------------------------------------------------

  async createKey(caller: Caller, permissions: Permission[]): Promise<Outcome<CreatedKey>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    return this.#keys.create(this.#config.name, permissions, Date.now());
  }

  async listKeys(caller: Caller): Promise<Outcome<KeyView[]>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    return ok(this.#keys.list());
  }

  async revokeKey(caller: Caller, accessKey: string): Promise<Outcome<{ revoked: string }>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    if (!this.#keys.revoke(accessKey)) return fail(404, "key_not_found", `no such key: ${accessKey}`);
    return ok({ revoked: accessKey });
  }

  // ---- submit ------------------------------------------------------------------

  /**
   * Accepts a task. Concurrent submissions share one commit with each other and with the
   * consumer's begin/finish calls (see #grouped); the task's queue message is sent once that
   * commit is made, and the caller answered after both.
   */
  async submit(input: SubmitInput): Promise<Outcome<Submitted>> {
    if (input.caller.kind !== "admin") {
      const auth = await this.#authorize(input.caller, "submit", input.request.body);
      if (!auth.ok) return auth;
    }
    // This submission's savepoint rolled back: nothing of it was written, nothing accepted is lost.
    return this.#grouped(() => this.#accept(input, Date.now())).catch((error: unknown) => storageFailure(error));
  }

  /** Validates and inserts one submission inside the group's transaction. */
  #accept(input: SubmitInput, now: number): Outcome<Submitted> {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return fail(404, "app_not_found", "no such app");
    if (input.request.body.byteLength > config.max_body_bytes) {
      return fail(413, "body_too_large", `request body exceeds this app's limit of ${config.max_body_bytes} bytes`);
    }
    const { options } = input;
    // A task must be able to run, and retry, before its retention ends: it would expire unrun.
    const delayMs = options.notBeforeMs - now;
    const policy = options.maxAttempts === null ? config.retry : { ...config.retry, max_attempts: options.maxAttempts };
    if (delayMs + retryLifetimeSeconds(policy) * 1000 >= config.retention * 1000) {
      return delayMs > 0
        ? fail(400, "delay_exceeds_retention", `the task would run, or still be retrying, after this app's retention (${config.retention} s) ends`)
        : fail(400, "retries_exceed_retention", `with these retries the task could still be retrying when this app's retention (${config.retention} s) ends`);
    }
    if (options.deduplicationId !== null) {
      const existing = this.#store.findDuplicate(options.deduplicationId, now - config.retention * 1000);
      if (existing) return ok({ id: existing, deduplicated: true });
      this.#store.releaseDeduplicationId(options.deduplicationId);
    }
    const id = newTaskId(identity.number, now);
    // One count of the queue window per group, then claimed slot by slot.
    this.#windowSlots ??= DISPATCH_WINDOW - this.#store.inFlight();
    const dispatched = config.state === "Active" && options.notBeforeMs <= now && this.#windowSlots > 0;
    if (dispatched) {
      this.#windowSlots--;
      this.#pendingSends.push(id);
    }
    this.#store.insert({
      id,
      reqId: input.reqId,
      request: input.request,
      createdMs: now,
      etaMs: options.notBeforeMs,
      dispatchedMs: dispatched ? now : null,
      deduplicationId: options.deduplicationId,
      maxAttempts: options.maxAttempts,
      timeout: options.timeout,
      callback: options.callback,
    });
    // With no unfinished task before, this one is now the oldest.
    if (this.#retentionDueAt === null) this.#retentionDueAt = now + config.retention * 1000;
    return ok({ id, deduplicated: false });
  }

  // ---- delivery state machine --------------------------------------------------

  /**
   * A consumer took these tasks' messages in a batch of `batchSize`: they are not lost while
   * they wait their turn behind slow origins (6 at a time), so the outbox must not send them
   * again. The hold covers the batch's worst case.
   */
  async claim(taskIds: string[], batchSize: number): Promise<void> {
    const config = this.#config;
    if (!config) return;
    const now = Date.now();
    const holdMs = Math.ceil(batchSize / CONSUMER_CONCURRENCY) * (config.timeout * 1000 + LEASE_GRACE_MS);
    for (const [id, until] of this.#claims) if (until <= now) this.#claims.delete(id);
    for (const id of taskIds) this.#claims.set(id, now + holdMs);
  }

  /** 0 → 1 when the task is due and the app active; otherwise says why not. */
  begin(taskId: string): Promise<BeginResult> {
    return this.#grouped(() => this.#begin(taskId, Date.now()));
  }

  /**
   * Records attempt `attempt`'s result; ignored unless that attempt is the one running. A
   * result that cannot be stored whole (a row over SQLite's limits) is stored without the
   * response's headers and body, so the attempt still counts and the task moves on.
   */
  finish(taskId: string, attempt: number, result: AttemptResult): Promise<FinishResult> {
    return this.#grouped(() => {
      const now = Date.now();
      try {
        return this.ctx.storage.transactionSync(() => this.#finishAttempt(taskId, attempt, result, now));
      } catch (error) {
        if (result.kind !== "response") throw error;
        console.error(`AppQueue:finish: the response of ${taskId} could not be stored; keeping its status only`, error);
        return this.#finishAttempt(taskId, attempt, { ...result, header: {}, body: new Uint8Array() }, now);
      }
    });
  }

  /**
   * Group commit: each SQLite commit is its own fsync and the runtime does not coalesce
   * separate RPCs, so submissions, begins and finishes arriving within GROUP_COMMIT_MS run in
   * one transaction; then queue messages go out in one sendBatch and the alarm is seen to once.
   */
  #grouped<T>(operation: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#operations.push({ run: operation, resolve: resolve as (value: unknown) => void, reject });
      if (this.#operations.length === 1) setTimeout(() => void this.#commitOperations(), GROUP_COMMIT_MS);
    });
  }

  async #commitOperations(): Promise<void> {
    const operations = this.#operations;
    this.#operations = [];
    this.#windowSlots = undefined;
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.ctx.storage.transactionSync(() => {
        for (const operation of operations) results.push(this.#isolated(operation.run));
      });
    } catch (error) {
      console.error(`AppQueue:commit: ${operations.length} operations rolled back`, error);
      this.#pendingBroadcasts = [];
      this.#pendingSends = [];
      for (const operation of operations) operation.reject(error);
      return;
    }
    try {
      await this.#afterWrites();
    } catch (error) {
      console.error("AppQueue:commit: after-commit work failed; the alarm will retry it", error);
    }
    operations.forEach((operation, i) => {
      const result = results[i]!;
      if (result.ok) operation.resolve(result.value);
      else operation.reject(result.error);
    });
  }

  /**
   * Runs one operation of a group in its own savepoint (a nested transactionSync): when it
   * throws, its writes and the messages it queued are undone, and its neighbours commit.
   */
  #isolated(run: () => unknown): { ok: true; value: unknown } | { ok: false; error: unknown } {
    const broadcasts = this.#pendingBroadcasts.length;
    const sends = this.#pendingSends.length;
    const windowSlots = this.#windowSlots;
    try {
      return { ok: true, value: this.ctx.storage.transactionSync(run) };
    } catch (error) {
      console.error("AppQueue:commit: one operation rolled back", error);
      this.#pendingBroadcasts.length = broadcasts;
      this.#pendingSends.length = sends;
      this.#windowSlots = windowSlots;
      return { ok: false, error };
    }
  }

  /** After task writes: what #sendCommitted does, then re-arm the alarm. */
  async #afterWrites(): Promise<void> {
    await this.#sendCommitted();
    await this.#scheduleNext();
  }

  /**
   * After task writes are committed: tell subscribers, send the new tasks' queue messages,
   * refill the queue window and send due notifications. The output gate holds all of it
   * until the writes are durable.
   */
  async #sendCommitted(): Promise<void> {
    const broadcasts = this.#pendingBroadcasts;
    this.#pendingBroadcasts = [];
    for (const message of broadcasts) this.#subscribers.broadcast(message);
    const sends = this.#pendingSends;
    this.#pendingSends = [];
    await this.#send(sends, []);
    await this.#flushOutbox();
  }

  #begin(taskId: string, now: number): BeginResult {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return { run: false, reason: "app_not_found" };
    let task = this.#store.get(taskId);
    if (!task) return { run: false, reason: "task_not_found" };
    if (task.state === 1) {
      if (task.lease_ms !== null && task.lease_ms > now) return { run: false, reason: "running" };
      this.#attemptLost(task, now);
      task = this.#store.get(taskId)!;
    }
    if (task.state === 10 || task.state === 11) return { run: false, reason: "finished" };
    if (config.state === "Paused") {
      this.#store.clearDispatched([taskId]);
      return { run: false, reason: "paused" };
    }
    if (task.eta_ms > now) return { run: false, reason: "not_due" };

    const attempt = task.attempts + 1;
    const timeoutMs = (task.timeout ?? config.timeout) * 1000;
    this.#store.markDoing(taskId, attempt, now, now + timeoutMs + LEASE_GRACE_MS);
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
        signingSecret: identity.signingSecret,
      },
    };
  }

  #finishAttempt(taskId: string, attempt: number, result: AttemptResult, now: number): FinishResult {
    const config = this.#config;
    const task = config ? this.#store.get(taskId) : null;
    if (!config || !task) return { applied: false, state: null };
    if (task.state !== 1 || task.attempts !== attempt) return { applied: false, state: task.state };
    if (result.kind === "response") {
      const success = result.status >= 200 && result.status <= 299;
      const room = responseBodyRoom(task, JSON.stringify(result.header));
      const kept = result.body.byteLength > room ? { ...result, body: result.body.subarray(0, room) } : result;
      this.#store.recordAttempt(taskId, now, kept, null, success ? null : `HTTP ${result.status}`);
      if (success) {
        this.#finish(taskId, 10, now);
        return { applied: true, state: 10 };
      }
    } else {
      this.#store.recordAttempt(taskId, now, null, result.error, `${result.error}: ${result.detail}`.slice(0, 200));
    }
    return { applied: true, state: this.#retryOrFail(this.#store.get(taskId)!, now) };
  }

  /**
   * Ends a task (→ 10 or 11) and queues its record for the task's callback and the app's
   * notify url, in the same transaction: a finished task's notification is never lost.
   */
  #finish(taskId: string, state: 10 | 11, now: number, error?: string): void {
    const config = this.#config!;
    const seq = this.#store.markFinished(taskId, state, now, error);
    const task = this.#store.get(taskId);
    // Subscribers hear of it once the writes are committed (#afterWrites).
    if (task && this.#subscribers.open().length > 0) this.#pendingBroadcasts.push(JSON.stringify({ ...toRecord(task, config.name), seq }));
    if (task?.callback) this.#store.addNotification(taskId, "callback", task.callback, now);
    if (config.notify.state === "On" && config.notify.url && config.notify.events.includes("TaskFinish")) {
      this.#store.addNotification(taskId, "notify", config.notify.url, now);
    }
  }

  async #finished(taskId: string, state: 10 | 11, now: number, error?: string): Promise<void> {
    this.#finish(taskId, state, now, error);
    await this.#afterWrites();
  }

  /** A failed attempt either schedules the next one (→ 0) or ends the task (→ 11). */
  #retryOrFail(task: TaskRow, now: number): TaskState {
    const config = this.#config!;
    const policy = task.max_attempts === null ? config.retry : { ...config.retry, max_attempts: task.max_attempts };
    if (mayRetry(policy, task.attempts, task.first_attempt_ms ?? now, now)) {
      this.#store.markWaiting(task.id, now + Math.round(jitteredBackoffSeconds(policy, task.attempts) * 1000));
      return 0;
    }
    this.#finish(task.id, 11, now);
    return 11;
  }

  /** A running attempt whose lease ran out: its consumer died; count it as timed out. */
  #attemptLost(task: TaskRow, now: number): void {
    this.#store.recordAttempt(task.id, now, null, "timeout", "attempt lost: no result before its lease ran out");
    this.#retryOrFail(task, now);
  }

  // ---- control -----------------------------------------------------------------

  async getTask(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const auth = await this.#authorize(caller, "query");
    if (!auth.ok) return auth;
    const task = this.#config ? this.#store.get(taskId) : null;
    return task ? ok(toRecord(task, this.#config!.name)) : fail(404, "task_not_found", "no such task");
  }

  async listTasks(caller: Caller, state: TaskState | null, limit: number, cursor: string | null): Promise<Outcome<TaskPage>> {
    const auth = await this.#authorize(caller, "query");
    if (!auth.ok) return auth;
    if (!this.#config) return fail(404, "app_not_found", "no such app");
    const rows = this.#store.list(state, limit + 1, cursor);
    const page = rows.slice(0, limit);
    return ok({
      tasks: page.map((row) => toRecord(row, this.#config!.name, false)),
      cursor: rows.length > limit ? page[page.length - 1]!.id : null,
    });
  }

  /** Waiting → 11 with error "canceled". */
  async cancel(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    const task = this.#config ? this.#store.get(taskId) : null;
    if (!task) return fail(404, "task_not_found", "no such task");
    if (task.state !== 0) return fail(409, "task_not_waiting", "only a waiting task can be canceled");
    await this.#finished(taskId, 11, Date.now(), "canceled");
    return ok(toRecord(this.#store.get(taskId)!, this.#config!.name));
  }

  /** Failed → waiting, with a fresh attempt budget, sent at once. */
  async retry(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const auth = await this.#authorize(caller, "manage");
    if (!auth.ok) return auth;
    const task = this.#config ? this.#store.get(taskId) : null;
    if (!task) return fail(404, "task_not_found", "no such task");
    if (task.state !== 11) return fail(409, "task_not_failed", "only a failed task can be retried");
    // A fresh budget of the app's max_attempts on top of the attempts already made.
    const budget = this.#config!.retry.max_attempts;
    this.#store.resetForRetry(taskId, Date.now(), budget === -1 ? -1 : task.attempts + budget);
    await this.#flushOutbox();
    await this.#scheduleNext();
    return ok(toRecord(this.#store.get(taskId)!, this.#config!.name));
  }

  // ---- live results: WebSocket subscribers ---------------------------------------

  /**
   * The WebSocket upgrade for `GET /v1/tasks?app=…[&since=<seq>]`, already authenticated by
   * the Worker. Over `max_subscribers` it answers 429 before upgrading. With `since`, every
   * later result still kept is replayed in seq order before the socket can see a live one:
   * the replay runs synchronously, so no result can finish in between (no gap, no duplicate).
   */
  override async fetch(request: Request): Promise<Response> {
    const reqId = request.headers.get("x-reqid") ?? "";
    const error = (status: number, code: string, message: string) =>
      new Response(errorBody({ code, message }, reqId), { status, headers: { "Content-Type": "application/json" } });
    const config = this.#config;
    if (!config) return error(404, "app_not_found", "no such app");
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return error(426, "upgrade_required", "expected a WebSocket upgrade");
    if (this.#subscribers.open().length >= config.max_subscribers) {
      return error(429, "too_many_subscribers", `app ${config.name} already has ${config.max_subscribers} subscribers`);
    }
    const sinceText = new URL(request.url).searchParams.get("since");
    const since = sinceText === null ? null : Number(sinceText);
    const now = Date.now();
    const { client, server } = this.#subscribers.accept(now);
    // First frame: the latest seq so far, so a client that asked for no replay still knows where it starts.
    this.#subscribers.send(server, JSON.stringify({ type: "hello", app: config.name, seq: this.#store.currentSeq() }));
    if (since !== null) this.#replayPage(server, since);
    this.#subscriberCheckAt = Math.min(this.#subscriberCheckAt ?? Infinity, checkAt(now));
    await this.#ensureAlarm(checkAt(now));
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * Sends one page (≤ REPLAY_PAGE_BYTES read) of the results after `after`, then the next
   * page in a later turn, so a resume over days of results never holds them all in memory.
   * Live results skip the socket meanwhile; the page that finds nothing more is read in the
   * same turn as the socket goes live, so nothing can finish in between: no gap, no duplicate.
   */
  #replayPage(ws: WebSocket, after: number): void {
    const config = this.#config;
    if (!config) return;
    const { rows, done } = this.#store.finishedSince(after);
    let last = after;
    for (const row of rows) {
      if (!this.#subscribers.send(ws, JSON.stringify({ ...toRecord(row, config.name), seq: row.seq }))) {
        this.#subscribers.goLive(ws); // gone: nothing to continue
        return;
      }
      last = row.seq ?? last;
    }
    if (done) return this.#subscribers.goLive(ws);
    this.#subscribers.holdLive(ws);
    setTimeout(() => {
      try {
        this.#replayPage(ws, last);
      } catch (error) {
        console.error("AppQueue:replay", error);
        this.#subscribers.goLive(ws);
        this.#subscribers.onClose(ws, 1011, "replay failed");
      }
    }, 0);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      this.#subscribers.onMessage(ws, message, Date.now());
    } catch (error) {
      console.error("AppQueue:webSocketMessage", error);
      this.#subscribers.onClose(ws, 1011, "internal error");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      this.#subscribers.onClose(ws, code, reason);
    } catch (error) {
      console.error("AppQueue:webSocketClose", error);
    }
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    console.error("AppQueue:webSocketError", error);
    this.#subscribers.onClose(ws, 1011, "websocket error");
  }

  // ---- alarm: outbox, leases, retention ------------------------------------------

  override async alarm(): Promise<void> {
    this.#alarmAt = null;
    try {
      const config = this.#config;
      if (!config) return;
      const now = Date.now();
      // Heartbeats first: enforcing them must not depend on the task work below succeeding.
      this.#subscriberCheckAt = this.#subscribers.reap(now);
      const retentionMs = config.retention * 1000;
      // Bounded batches: a huge backlog past retention takes several alarms, never one that fails.
      const expired = this.#store.unfinishedCreatedBefore(now - retentionMs, RETENTION_BATCH);
      for (const id of expired) this.#finish(id, 11, now, "expired");
      const deleted = this.#store.deleteFinishedBefore(now - retentionMs, RETENTION_BATCH);
      if (expired.length === RETENTION_BATCH || deleted === RETENTION_BATCH) this.#retentionDueAt = now + 1;
      // The oldest unfinished task only gets newer (new tasks are newer, finished ones leave),
      // so a known deadline can only be early, never late: look it up again only once it passed.
      // (The lookup walks the primary key past finished tasks; doing it on every alarm cost
      // half the object's CPU while draining a backlog.)
      if (this.#retentionDueAt !== undefined && this.#retentionDueAt !== null && this.#retentionDueAt <= now) this.#retentionDueAt = undefined;
      for (const task of this.#store.expiredLeases(now)) this.#attemptLost(task, now);
      this.#store.forgetStaleDispatches(now - REDISPATCH_AFTER_MS, now, (id) => (this.#claims.get(id) ?? 0) > now);
      await this.#sendCommitted();
    } catch (error) {
      console.error("AppQueue:alarm", error);
      throw error; // the runtime retries a throwing alarm
    } finally {
      await this.#scheduleNext();
    }
  }

  /**
   * Sends queue messages for due, unsent work: tasks (while the app is active, keeping at
   * most DISPATCH_WINDOW in flight) and notifications (always: a paused app still reports
   * what finished).
   */
  async #flushOutbox(): Promise<void> {
    const config = this.#config;
    if (!config) return;
    const now = Date.now();
    if (now < this.#sendRetryAt) return; // backing off a failing queue
    const room = config.state === "Active" ? Math.min(100, DISPATCH_WINDOW - this.#store.inFlight()) : 0;
    const taskIds = room > 0 ? this.#store.dueUnsent(now, room) : [];
    const notifications = this.#store.dueNotifications(now, now - REDISPATCH_AFTER_MS, 100 - taskIds.length);
    if (taskIds.length === 0 && notifications.length === 0) return;
    this.#store.markDispatched(taskIds, now);
    this.#store.markNotificationsDispatched(notifications, now);
    await this.#send(taskIds, notifications);
  }

  /**
   * Sends the queue messages of tasks and notifications already marked dispatched. If the
   * queue refuses them the marks are cleared, so the alarm sends them again.
   */
  async #send(taskIds: string[], notifications: NotificationRow[]): Promise<void> {
    const config = this.#config;
    if (!config || (taskIds.length === 0 && notifications.length === 0)) return;
    const messages: TaskMessage[] = [
      ...taskIds.map((id) => ({ app: config.name, id })),
      ...notifications.map((row) => ({ app: config.name, id: row.task_id, notify: row.kind })),
    ];
    try {
      for (let i = 0; i < messages.length; i += 100) {
        await this.env.TASKS.sendBatch(messages.slice(i, i + 100).map((body) => ({ body, contentType: "json" as const })));
      }
    } catch (error) {
      console.error(`AppQueue:send: queue send failed for ${messages.length} messages of ${config.name}; the alarm will resend`, error);
      this.#store.clearDispatched(taskIds);
      this.#store.clearNotificationsDispatched(notifications);
      // A queue that keeps refusing is not retried every second: back off, with jitter.
      const delay = Math.min(SEND_RETRY_MAX_MS, SEND_RETRY_MIN_MS * 2 ** this.#sendFailures);
      this.#sendFailures++;
      this.#sendRetryAt = Date.now() + Math.round(delay * (0.5 + Math.random() / 2));
      await this.#ensureAlarm(this.#sendRetryAt);
      return;
    }
    this.#sendFailures = 0;
    this.#sendRetryAt = 0;
  }

  // ---- notifications ---------------------------------------------------------------

  /** Starts one POST of a finished task's record; null when there is nothing (more) to send or it is not due. */
  async beginNotification(taskId: string, kind: NotificationKind): Promise<NotificationDelivery | null> {
    const config = this.#config;
    const identity = this.#identity;
    const row = config ? this.#store.getNotification(taskId, kind) : null;
    const task = row ? this.#store.get(taskId) : null;
    if (!config || !identity || !row || !task) return null;
    const now = Date.now();
    if (row.eta_ms > now) return null;
    const attempt = row.attempts + 1;
    this.#store.startNotification(taskId, kind, attempt, now + NOTIFY_TIMEOUT_MS + LEASE_GRACE_MS);
    await this.#ensureAlarm(now + NOTIFY_TIMEOUT_MS + LEASE_GRACE_MS);
    return {
      app: config.name,
      taskId,
      kind,
      url: row.url,
      attempt,
      body: JSON.stringify(toRecord(task, config.name)),
      signingSecret: identity.signingSecret,
    };
  }

  /** Ends a notification attempt: delivered, or retried with backoff until NOTIFY_RETRY is spent. */
  async finishNotification(taskId: string, kind: NotificationKind, attempt: number, delivered: boolean, detail: string): Promise<void> {
    const row: NotificationRow | null = this.#config ? this.#store.getNotification(taskId, kind) : null;
    if (!row || row.attempts !== attempt) return;
    const now = Date.now();
    if (delivered) {
      this.#store.deleteNotification(taskId, kind);
    } else if (attempt >= NOTIFY_RETRY.max_attempts) {
      console.error(`AppQueue:finishNotification: giving up ${kind} of ${taskId} to ${new URL(row.url).host} after ${attempt} attempts: ${detail}`);
      this.#store.deleteNotification(taskId, kind);
    } else {
      this.#store.rescheduleNotification(taskId, kind, now + Math.round(jitteredBackoffSeconds(NOTIFY_RETRY, attempt) * 1000));
    }
    await this.#scheduleNext();
  }

  /** Sets the alarm to the next moment task work is due (one alarm multiplexes all duties). */
  async #scheduleNext(): Promise<void> {
    const config = this.#config;
    if (!config) return;
    const windowFull = this.#store.inFlight() >= DISPATCH_WINDOW;
    // While a failing queue is backed off, sending waits; heartbeats and retention do not.
    const notBefore = (at: number | null) => (at === null ? null : Math.max(at, this.#sendRetryAt));
    const tasks = notBefore(this.#store.nextWakeMs(REDISPATCH_AFTER_MS, config.retention * 1000, config.state === "Paused", windowFull));
    const notifications = notBefore(this.#store.nextNotificationWakeMs(REDISPATCH_AFTER_MS));
    if (this.#subscriberCheckAt === undefined) this.#subscriberCheckAt = this.#subscribers.reap(Date.now());
    if (this.#retentionDueAt === undefined) this.#retentionDueAt = this.#store.unfinishedRetentionDueMs(config.retention * 1000);
    const candidates = [tasks, notifications, this.#subscriberCheckAt, this.#retentionDueAt].filter((at): at is number => at !== null);
    const next = candidates.length ? Math.min(...candidates) : null;
    if (next === null) {
      if (this.#alarmAt !== null) await this.ctx.storage.deleteAlarm();
      this.#alarmAt = null;
      return;
    }
    // An alarm earlier than needed is harmless (it finds little to do and re-arms); moving it
    // later on every change would cost a storage write per batch. So it only moves earlier,
    // or is set when none is pending.
    const at = Math.max(next, Date.now());
    if (this.#alarmAt === null || at < this.#alarmAt || this.#alarmAt < Date.now()) {
      await this.ctx.storage.setAlarm(at);
      this.#alarmAt = at;
    }
  }

  /** Makes sure the alarm fires no later than `at`. */
  async #ensureAlarm(at: number): Promise<void> {
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.#alarmAt = at;
  }
}
