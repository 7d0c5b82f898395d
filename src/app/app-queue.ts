/**
 * AppQueue: one Durable Object per app. It owns the app's config, its task records and the
 * outbox that feeds the Cloudflare Queue, in SQLite. This class is the shell: it holds the
 * helpers (store, admission, outbox, state machine, subscribers, group commit) and answers its
 * callers, grouped below by who calls: the Worker's submit path, the queue consumer, the
 * control API, the live feed, and the alarm.
 *
 * Durability: a task is answered with its id only after the insert commits. The queue message
 * is sent right after the insert with no `await` between, so the object's output gate holds
 * the send until the write is durable; the row is marked dispatched in the same transaction.
 * Should the send fail (or the message be lost, as local Queues lose theirs on restart), the
 * alarm sends it again.
 *
 * Queues deliver at least once and in no order, so `begin` and `finish` are an idempotent state
 * machine keyed by the attempt number: a duplicate message never re-runs a finished task, and a
 * stale `finish` never counts twice.
 */
import { DurableObject } from "cloudflare:workers";
import type { Permission } from "../auth/access-keys";
import { ADMIN, type Caller, type Principal } from "../auth/authenticate";
import { masterSecret } from "../auth/key-vault";
import { applyPatch, normalizeConfig, type AppConfig } from "../config/app-config";
import type { ConfigRules } from "../config/rules";
import { errorBody, fail, ok, outcomeOf, type Outcome } from "../http/errors";
import { log } from "../shared/log";
import { meteredSql, meterRequests, snapshot, type MeterSnapshot } from "../shared/meters";
import type {
  AttemptReport,
  AttemptResult,
  BeginResult,
  FinishResult,
  NotificationDelivery,
  NotificationRef,
  NotificationReport,
  TaskMessage,
  TaskRecord,
} from "../shared/types";
import { accept, storageFailure } from "./accept";
import { Admission } from "./admission";
import { AppKeys, type CreatedKey, type KeyView } from "./app-keys";
import { parsePurge, parseRedrive, pendingJobs, runJob } from "./bulk";
import type { DeliveryState, SubmitInput, Submitted, TaskPage, TaskQuery } from "./contract";
import { GroupCommit } from "./group-commit";
import { checkAt } from "./heartbeat";
import { beginNotification, finishNotification } from "./notifications";
import { Outbox, REDISPATCH_AFTER_MS } from "./outbox";
import { rotated, signingSecretsOf, type AppIdentity } from "./signing-secrets";
import { StateMachine } from "./state-machine";
import { AppStats, statsReport } from "./stats";
import { openStore, toRecord, type AppStore } from "./store";
import { Subscribers } from "./subscribers";

/** Tasks expired, and finished tasks deleted, per alarm at most. */
export const RETENTION_BATCH = 500;

/** How long concurrent calls are gathered into one commit (0: whatever arrived in this turn). */
export const GROUP_COMMIT_MS = 0;

/**
 * What the object keeps in memory about when duties fall due, so it need not ask SQLite after
 * every commit. Built afresh on wake-up and when the app is deleted.
 */
interface Due {
  /** The alarm time as last set by this instance; avoids a storage write per submit. */
  alarmAt: number | null;
  /** When the oldest unfinished task expires (never later than the truth); undefined = look it up. */
  retentionAt: number | null | undefined;
  /** When subscriber heartbeats must next be checked; undefined = not known since wake-up. */
  subscriberCheckAt: number | null | undefined;
  /** Whether a bulk job waits for the alarm; undefined = look it up (after a job ran, on wake-up). */
  jobsPending: boolean | undefined;
}

const APP_NOT_FOUND = () => fail(404, "app_not_found", "no such app");
const TASK_NOT_FOUND = () => fail(404, "task_not_found", "no such task");

export class AppQueue extends DurableObject<Env> {
  /** The app's SQLite tables (replaced when the app is deleted: deleteAll drops them). */
  protected store!: AppStore;
  /** Adds the rows read and written by the statements run so far to the cost meters. */
  #settleSql!: () => void;
  #keys!: AppKeys;
  #config: AppConfig | null = null;
  #identity: AppIdentity | null = null;
  #due!: Due;
  /** Delivery statistics; read from SQLite when first needed. */
  #stats: AppStats | undefined = undefined;
  readonly #subscribers: Subscribers;
  readonly #admission: Admission;
  readonly #outbox: Outbox;
  readonly #machine: StateMachine;
  readonly #group: GroupCommit;
  /** Result frames for subscribers, sent once the writes that made them are committed. */
  #pendingBroadcasts: string[] = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Runs on every wake-up, so it stays cheap: a schema version check, two small reads.
    this.#open();
    this.#subscribers = new Subscribers(ctx);
    this.#admission = new Admission(() => this.store);
    this.#outbox = new Outbox(
      () => this.store,
      () => this.env.TASKS,
      (at) => this.#ensureAlarm(at),
      this.#admission,
    );
    this.#machine = new StateMachine({
      store: () => this.store,
      config: () => this.#config,
      signingSecrets: () => (this.#identity ? signingSecretsOf(this.#identity, Date.now()) : null),
      hold: (untilMs) => this.#admission.hold(untilMs),
      admit: (taskId, now) => this.#config !== null && this.#admission.admit(this.#config, taskId, now),
      attemptEnded: (signal, detail, durationMs, now) => {
        if (this.#config) this.#admission.attemptEnded(this.#config, signal, detail, now);
        this.#appStats().attemptEnded(durationMs, signal === "success", now);
      },
      taskFinished: (latencyMs) => this.#appStats().taskFinished(latencyMs),
      announce: (task, seq) => {
        // Subscribers hear of it once the writes are committed.
        if (this.#config && this.#subscribers.open().length > 0) {
          this.#pendingBroadcasts.push(JSON.stringify({ ...toRecord(task, this.#config.name), seq }));
        }
      },
    });
    this.#group = new GroupCommit(
      ctx.storage,
      {
        beginGroup: () => {
          this.#outbox.beginGroup();
          this.store.tasks.openCountBatch();
        },
        checkpoint: () => {
          const broadcasts = this.#pendingBroadcasts.length;
          const undoOutbox = this.#outbox.checkpoint();
          const undoCounts = this.store.tasks.countCheckpoint();
          return () => {
            this.#pendingBroadcasts.length = broadcasts;
            undoOutbox();
            undoCounts();
          };
        },
        beforeCommit: () => this.store.tasks.closeCountBatch(),
        discard: () => {
          this.#pendingBroadcasts = [];
          this.#outbox.discard();
          this.store.tasks.discardCountBatch();
        },
        afterCommit: () => this.#afterWrites(),
      },
      GROUP_COMMIT_MS,
    );
    void ctx.blockConcurrencyWhile(async () => {
      this.#due.alarmAt = await ctx.storage.getAlarm();
      // Local dev does not persist alarms across restarts (workerd#2927): re-arm from SQLite.
      if (this.#due.alarmAt === null) await this.#scheduleNext();
    });
  }

  /**
   * Opens the store and reads the app from it, forgetting whatever was known of an earlier
   * store: on wake-up, and after `destroy` dropped the tables (this instance may live on and
   * serve a new app of the same name).
   */
  #open(): void {
    const metered = meteredSql(this.ctx.storage.sql);
    this.#settleSql = metered.settle;
    this.store = openStore(metered.sql);
    this.#keys = new AppKeys(metered.sql, masterSecret(this.env));
    this.#due = { alarmAt: null, retentionAt: undefined, subscriberCheckAt: undefined, jobsPending: undefined };
    this.#stats = undefined;
    const config = this.store.meta.get("config");
    const identity = this.store.meta.get("identity");
    this.#config = config ? normalizeConfig(JSON.parse(config) as AppConfig) : null;
    this.#identity = identity ? (JSON.parse(identity) as AppIdentity) : null;
  }

  // ---- who may do what ------------------------------------------------------------------

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

  /** The one guard of the control methods: the caller may do `permission`, and this object is an app. */
  async #guard(caller: Caller, permission: Permission, missing = APP_NOT_FOUND): Promise<Outcome<AppConfig>> {
    const auth = await this.#authorize(caller, permission);
    if (!auth.ok) return auth;
    return this.#config ? ok(this.#config) : missing();
  }

  /** Verifies a key of this app for a request about something else (another app, the app list). */
  async identify(caller: Caller, body: Uint8Array): Promise<Outcome<Principal>> {
    return this.#authorize(caller, null, body);
  }

  // ---- submit (the Worker's app hosts and front doors) -------------------------------------

  /**
   * Accepts a task. Concurrent submissions share one commit with each other and with the
   * consumer's begin/finish calls (group commit); the task's queue message is sent once that
   * commit is made, and the caller answered after both.
   */
  async submit(input: SubmitInput): Promise<Outcome<Submitted>> {
    if (input.caller.kind !== "admin") {
      const auth = await this.#authorize(input.caller, "submit", input.request.body);
      if (!auth.ok) return auth;
    }
    // This submission's savepoint rolled back: nothing of it was written, nothing accepted is lost.
    return this.#group.run(() => this.#accept(input, Date.now())).catch((error: unknown) => storageFailure(error));
  }

  #accept(input: SubmitInput, now: number): Outcome<Submitted> {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return APP_NOT_FOUND();
    const outcome = accept({ config, identity, tasks: this.store.tasks, admission: this.#admission, outbox: this.#outbox }, input, now);
    // With no unfinished task before, a new one is now the oldest.
    if (outcome.ok && !outcome.value.deduplicated && this.#due.retentionAt === null) this.#due.retentionAt = now + config.retention * 1000;
    return outcome;
  }

  // ---- the queue consumer ---------------------------------------------------------------

  /**
   * A consumer took these tasks' messages in a batch of `batchSize`: they are not lost while
   * they wait their turn behind slow origins (6 at a time), so the outbox must not send them
   * again. The hold covers the batch's worst case.
   */
  async claim(taskIds: string[], batchSize: number): Promise<void> {
    if (this.#config) this.#outbox.claim(taskIds, batchSize, this.#config.timeout, Date.now());
  }

  /** 0 → 1 when the task is due and the app active; otherwise says why not. */
  begin(taskId: string): Promise<BeginResult> {
    return this.#begin(taskId);
  }

  // The RPC methods are metered per call (meterRequests): the batched ones call these, not them.
  #begin(taskId: string): Promise<BeginResult> {
    return this.#group.run(() => this.#machine.begin(taskId, Date.now()));
  }

  /**
   * Begins several tasks in one RPC (the consumer's tasks of this app about to run): each is a
   * `begin` of its own in the same group commit. One that cannot be stored answers
   * `{run: false, reason: "error"}` alone; its neighbours begin.
   */
  async beginMany(taskIds: string[]): Promise<BeginResult[]> {
    const settled = await Promise.allSettled(taskIds.map((taskId) => this.#begin(taskId)));
    return settled.map((outcome): BeginResult => (outcome.status === "fulfilled" ? outcome.value : { run: false, reason: "error" }));
  }

  /**
   * Records attempt `attempt`'s result; ignored unless that attempt is the one running. A
   * result that cannot be stored whole (a row over SQLite's limits) is stored without the
   * response's headers and body, so the attempt still counts and the task moves on.
   */
  finish(taskId: string, attempt: number, result: AttemptResult): Promise<FinishResult> {
    return this.#finish(taskId, attempt, result);
  }

  /**
   * Records several attempts' results in one RPC: each is a `finish` of its own in the same
   * group commit. One that cannot be stored answers null alone (the consumer tries it again).
   */
  async finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]> {
    const settled = await Promise.allSettled(reports.map(({ taskId, attempt, result }) => this.#finish(taskId, attempt, result)));
    return settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : null));
  }

  async #finish(taskId: string, attempt: number, result: AttemptResult): Promise<FinishResult> {
    try {
      return await this.#group.run(() => this.#machine.finishAttempt(taskId, attempt, result, Date.now()));
    } catch (error) {
      // Its savepoint rolled back alone; store what surely fits, in the next group.
      if (result.kind !== "response") throw error;
      log("error", "response_not_stored", { app: this.#config?.name, task: taskId, attempt }, error);
      const bare: AttemptResult = { ...result, header: {}, body: new Uint8Array() };
      return this.#group.run(() => this.#machine.finishAttempt(taskId, attempt, bare, Date.now()));
    }
  }

  /**
   * Starts several notification attempts (POSTs of a finished task's record) in one RPC, in one
   * group commit; null for each that is not due (or gone). One that cannot be stored answers
   * null alone: its row keeps its message mark, and the outbox sends it again once that message
   * counts as lost.
   */
  async beginNotifications(refs: NotificationRef[]): Promise<(NotificationDelivery | null)[]> {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return refs.map(() => null);
    const signingSecrets = signingSecretsOf(identity, Date.now());
    const settled = await Promise.allSettled(
      refs.map(({ taskId, kind }) => this.#group.run(() => beginNotification(this.store, config, signingSecrets, taskId, kind, Date.now()))),
    );
    const begun = settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : null));
    const leases = begun.filter((item) => item !== null).map((item) => item.leaseUntilMs);
    if (leases.length > 0) await this.#ensureAlarm(Math.min(...leases));
    return begun.map((item) => item?.delivery ?? null);
  }

  /**
   * Ends several notification attempts (delivered, or retried with backoff until NOTIFY_RETRY is
   * spent) in one RPC, in one group commit; false for each that could not be stored.
   */
  async finishNotifications(reports: NotificationReport[]): Promise<boolean[]> {
    if (!this.#config) return reports.map(() => true); // the app is gone, and its notifications with it
    const settled = await Promise.allSettled(
      reports.map(({ taskId, kind, attempt, delivered, detail }) =>
        this.#group.run(() => finishNotification(this.store, taskId, kind, attempt, delivered, detail, Date.now())),
      ),
    );
    return settled.map((outcome) => outcome.status === "fulfilled");
  }

  /**
   * A queue message the consumer gave up on (the dead-letter queue): a task that still waits is
   * sent again from the outbox, a pending notification is rescheduled; a running task is left to
   * its lease and a finished or deleted one needs nothing. Answers what was done.
   */
  async reconcile(message: TaskMessage): Promise<"resent" | "rescheduled" | "running" | "finished" | "gone"> {
    const config = this.#config;
    if (!config) return "gone";
    if (message.notify) {
      if (!this.store.notifications.get(message.id, message.notify)) return "gone";
      this.store.notifications.reschedule(message.id, message.notify, Date.now());
      await this.#scheduleNext();
      return "rescheduled";
    }
    const state = this.store.tasks.stateOf(message.id);
    if (state === null) return "gone";
    if (state === 1) return "running";
    if (state !== 0) return "finished";
    this.store.tasks.clearDispatched([message.id]);
    await this.#outbox.flush(config);
    await this.#scheduleNext();
    return "resent";
  }

  // ---- the control API: the app ------------------------------------------------------------

  /** Makes this object the app `config.name`. 409 when it already is an app. */
  async configure(config: AppConfig, identity: AppIdentity): Promise<Outcome<AppConfig>> {
    if (this.#config) return fail(409, "app_exists", `app ${config.name} already exists`);
    this.store.meta.set("config", JSON.stringify(config));
    this.store.meta.set("identity", JSON.stringify(identity));
    this.#config = normalizeConfig(config);
    this.#identity = identity;
    return ok(config);
  }

  /** Whether this object is an app (a name the registry holds may have failed to configure). */
  async exists(): Promise<boolean> {
    return this.#config !== null;
  }

  /** The app's config and task counts (`GET /v1/apps/<name>`): never a secret. */
  async describe(caller: Caller): Promise<Outcome<{ config: AppConfig; stats: Record<string, number>; delivery: DeliveryState }>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    return ok({ config: guard.value, stats: this.store.tasks.counts(), delivery: this.#admission.delivery(Date.now()) });
  }

  /** Applies a validated partial update; resuming a paused app starts its waiting tasks. */
  async patchConfig(caller: Caller, patch: unknown, rules: ConfigRules): Promise<Outcome<AppConfig>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    const current = guard.value;
    const patched = outcomeOf(() => applyPatch(current, patch, rules));
    if (!patched.ok) return patched;
    const next = patched.value;
    this.store.meta.set("config", JSON.stringify(next));
    this.#config = next;
    if (current.state !== next.state) {
      // Messages sent before a pause were dropped by `begin`; send every waiting task afresh.
      this.store.tasks.forgetAllDispatches();
      if (next.state === "Active") await this.#outbox.flush(next);
    }
    await this.#scheduleNext();
    return ok(next);
  }

  /**
   * A new signing secret, shown once in the answer; the previous one keeps signing beside it
   * for a day (signing-secrets.ts), so origins can switch without refusing a delivery.
   */
  async rotateSigningSecret(caller: Caller): Promise<Outcome<{ signing_secret: string; previous_valid_until: number }>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    if (!this.#identity) return APP_NOT_FOUND();
    const next = rotated(this.#identity, Date.now());
    this.store.meta.set("identity", JSON.stringify(next));
    this.#identity = next;
    return ok({ signing_secret: next.signingSecret, previous_valid_until: Math.floor(next.previousSigningSecretUntilMs! / 1000) });
  }

  /**
   * `GET /v1/apps/<name>/stats`: counts by state (counters), the oldest waiting task's age,
   * attempts and successes over the last minute and hour, latency percentiles (histograms),
   * queue re-sends, the limits in force and the delivery state. Reads no task rows but one.
   */
  async stats(caller: Caller): Promise<Outcome<Record<string, unknown>>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    const now = Date.now();
    return ok(statsReport(guard.value, this.store.tasks, this.#appStats(), this.#admission.delivery(now), now));
  }

  /** Deletes the app: config, tasks, keys and alarm. New submissions find no app at once. */
  async destroy(caller: Caller): Promise<Outcome<null>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    for (const ws of this.#subscribers.open()) this.#subscribers.onClose(ws, 4404, "app deleted");
    this.#config = null;
    this.#identity = null;
    await this.ctx.storage.deleteAlarm();
    // Result seqs survive the app: a client resuming with a seq of the old app must not
    // drop the new app's results as already seen.
    const seq = this.store.tasks.currentSeq();
    await this.ctx.storage.deleteAll();
    this.#open();
    this.#admission.reset();
    this.#outbox.reset();
    this.store.tasks.setSeq(seq);
    return ok(null);
  }

  /** This isolate's cost meters (`GET /v1/meters`), its SQLite rows settled first. */
  async meters(): Promise<MeterSnapshot> {
    this.#settleSql();
    return snapshot();
  }

  // ---- the control API: access keys ------------------------------------------------------

  async createKey(caller: Caller, permissions: Permission[]): Promise<Outcome<CreatedKey>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    return this.#keys.create(guard.value.name, permissions, Date.now());
  }

  async listKeys(caller: Caller): Promise<Outcome<KeyView[]>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    return ok(this.#keys.list());
  }

  async revokeKey(caller: Caller, accessKey: string): Promise<Outcome<{ revoked: string }>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    if (!this.#keys.revoke(accessKey)) return fail(404, "key_not_found", `no such key: ${accessKey}`);
    return ok({ revoked: accessKey });
  }

  // ---- the control API: tasks ------------------------------------------------------------

  async getTask(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#guard(caller, "query", TASK_NOT_FOUND);
    if (!guard.ok) return guard;
    const task = this.store.tasks.get(taskId);
    return task ? ok(toRecord(task, guard.value.name)) : TASK_NOT_FOUND();
  }

  /** A page of tasks, newest first: ids below `query.below` (a cursor, a time) and from `query.from` (a time). */
  async listTasks(caller: Caller, query: TaskQuery): Promise<Outcome<TaskPage>> {
    const guard = await this.#guard(caller, "query");
    if (!guard.ok) return guard;
    const { state, limit } = query;
    const rows = this.store.tasks.list(state, limit + 1, query.below, query.from);
    const page = rows.slice(0, limit);
    return ok({
      tasks: page.map((row) => toRecord(row, guard.value.name, false)),
      cursor: rows.length > limit ? page[page.length - 1]!.id : null,
    });
  }

  /** Waiting → 11 with error "canceled". */
  async cancel(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#guard(caller, "manage", TASK_NOT_FOUND);
    if (!guard.ok) return guard;
    const task = this.store.tasks.get(taskId);
    if (!task) return TASK_NOT_FOUND();
    if (task.state !== 0) return fail(409, "task_not_waiting", "only a waiting task can be canceled");
    this.#machine.end(taskId, 0, 11, Date.now(), "canceled");
    await this.#afterWrites();
    return ok(toRecord(this.store.tasks.get(taskId)!, guard.value.name));
  }

  /** Failed → waiting, with a fresh attempt budget, sent at once. */
  async retry(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#guard(caller, "manage", TASK_NOT_FOUND);
    if (!guard.ok) return guard;
    const config = guard.value;
    const task = this.store.tasks.get(taskId);
    if (!task) return TASK_NOT_FOUND();
    if (task.state !== 11) return fail(409, "task_not_failed", "only a failed task can be retried");
    this.store.tasks.resetForRetry(taskId, Date.now(), config.retry.max_attempts);
    await this.#outbox.flush(config);
    await this.#scheduleNext();
    return ok(toRecord(this.store.tasks.get(taskId)!, config.name));
  }

  /**
   * Re-runs failed tasks matching `input` (created since/until, last status) with a fresh
   * attempt budget, each exactly once; with `dry_run` only counts them. The first batch runs
   * now, the rest one batch per alarm.
   */
  async redrive(caller: Caller, input: unknown): Promise<Outcome<{ matched: number; retried: number; remaining: number }>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    const request = outcomeOf(() => parseRedrive(input, Date.now()));
    if (!request.ok) return request;
    const { criteria, dryRun } = request.value;
    const matched = this.store.tasks.countFailedMatching(criteria);
    if (dryRun || matched === 0) return ok({ matched, retried: 0, remaining: dryRun ? matched : 0 });
    const retried = runJob(this.store, guard.value, { kind: "redrive", redrive: criteria, untilMs: criteria.untilMs, cursor: "" });
    this.#due.jobsPending = undefined;
    await this.#afterWrites();
    return ok({ matched, retried, remaining: Math.max(0, matched - retried) });
  }

  /** Drops every waiting task (Cloud Tasks' purge): the first batch now, the rest by the alarm. */
  async purge(caller: Caller, input: unknown): Promise<Outcome<{ deleted: number; remaining: number }>> {
    const guard = await this.#guard(caller, "manage");
    if (!guard.ok) return guard;
    const request = outcomeOf(() => parsePurge(input));
    if (!request.ok) return request;
    const waiting = this.store.tasks.counts()["waiting"] ?? 0;
    const deleted = runJob(this.store, guard.value, { kind: "purge", untilMs: Date.now() + 1, cursor: "" });
    this.#due.jobsPending = undefined;
    await this.#afterWrites();
    return ok({ deleted, remaining: Math.max(0, waiting - deleted) });
  }

  // ---- the live feed: WebSocket subscribers ----------------------------------------------

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
    const params = new URL(request.url).searchParams;
    const sinceText = params.get("since");
    const since = sinceText === null ? null : Number(sinceText);
    const now = Date.now();
    const { client, server } = this.#subscribers.accept(now);
    // Qiniu's feed sends task records and nothing else. A client that resumes (since=) or asks
    // (hello=1) first gets the latest seq so far, so it knows where a later resume starts.
    if (since !== null || params.get("hello") === "1") {
      this.#subscribers.send(server, JSON.stringify({ type: "hello", app: config.name, seq: this.store.tasks.currentSeq() }));
    }
    if (since !== null) this.#replayPage(server, since);
    this.#due.subscriberCheckAt = Math.min(this.#due.subscriberCheckAt ?? Infinity, checkAt(now));
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
    const { rows, done } = this.store.tasks.finishedSince(after);
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
        log("error", "replay_failed", { app: this.#config?.name }, error);
        this.#subscribers.goLive(ws);
        this.#subscribers.onClose(ws, 1011, "replay failed");
      }
    }, 0);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      this.#subscribers.onMessage(ws, message, Date.now());
    } catch (error) {
      log("error", "websocket_message_failed", { app: this.#config?.name }, error);
      this.#subscribers.onClose(ws, 1011, "internal error");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      this.#subscribers.onClose(ws, code, reason);
    } catch (error) {
      log("error", "websocket_close_failed", { app: this.#config?.name }, error);
    }
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    log("warn", "websocket_error", { app: this.#config?.name }, error);
    this.#subscribers.onClose(ws, 1011, "websocket error");
  }

  // ---- after writes, and the alarm: outbox, leases, retention, heartbeats, bulk jobs ----

  /** After task writes: tell subscribers, send what the commit made due, then re-arm the alarm. */
  async #afterWrites(): Promise<void> {
    this.#saveStats(false);
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
    if (this.#config) await this.#outbox.sendCommitted(this.#config);
  }

  #appStats(): AppStats {
    this.#stats ??= new AppStats(this.store.meta.get("stats"));
    return this.#stats;
  }

  /** Writes the statistics when they changed (at most every 10 s unless `force`). */
  #saveStats(force: boolean): void {
    const json = this.#stats?.toSave(Date.now(), force);
    if (json) this.store.meta.set("stats", json);
  }

  override async alarm(): Promise<void> {
    this.#due.alarmAt = null;
    try {
      const config = this.#config;
      if (!config) return;
      const now = Date.now();
      const { tasks } = this.store;
      // Heartbeats first: enforcing them must not depend on the task work below succeeding.
      this.#due.subscriberCheckAt = this.#subscribers.reap(now);
      const retentionMs = config.retention * 1000;
      // Bounded batches: a huge backlog past retention takes several alarms, never one that fails.
      const expired = tasks.unfinishedCreatedBefore(now - retentionMs, RETENTION_BATCH);
      for (const task of expired) this.#machine.end(task.id, task.state, 11, now, "expired");
      const deleted = tasks.deleteFinishedBefore(now - retentionMs, RETENTION_BATCH);
      if (expired.length === RETENTION_BATCH || deleted.more) this.#due.retentionAt = now + 1;
      // The oldest unfinished task only gets newer (new tasks are newer, finished ones leave),
      // so a known deadline can only be early, never late: look it up again only once it passed.
      // (The lookup walks the primary key past finished tasks; doing it on every alarm cost
      // half the object's CPU while draining a backlog.)
      const retentionAt = this.#due.retentionAt;
      if (retentionAt !== undefined && retentionAt !== null && retentionAt <= now) this.#due.retentionAt = undefined;
      for (const task of tasks.expiredLeases(now)) this.#machine.attemptLost(task, now);
      // One batch of each bulk job (redrive, purge); what remains waits for the next alarm.
      for (const job of pendingJobs(this.store)) runJob(this.store, config, job);
      this.#due.jobsPending = undefined;
      this.#saveStats(true);
      this.#outbox.forgetLost(now);
      await this.#sendCommitted();
    } catch (error) {
      log("error", "alarm_failed", { app: this.#config?.name }, error);
      throw error; // the runtime retries a throwing alarm
    } finally {
      await this.#scheduleNext();
    }
  }

  /** Sets the alarm to the next moment task work is due (one alarm multiplexes all duties). */
  async #scheduleNext(): Promise<void> {
    const config = this.#config;
    if (!config) return;
    const due = this.#due;
    // While sending waits (a full window, a limit, a backoff), heartbeats and retention do not.
    const now = Date.now();
    const sending = this.#outbox.sendingWake(config, now);
    const retentionMs = config.retention * 1000;
    const tasks = this.store.tasks.nextWakeMs(REDISPATCH_AFTER_MS, retentionMs, config.state === "Paused", sending.blocked, sending.notBefore);
    const notifications = this.#outbox.notBefore(this.store.notifications.nextWakeMs(REDISPATCH_AFTER_MS));
    if (due.subscriberCheckAt === undefined) due.subscriberCheckAt = this.#subscribers.reap(Date.now());
    if (due.retentionAt === undefined) due.retentionAt = this.store.tasks.unfinishedRetentionDueMs(retentionMs);
    // Read once, not after every commit: only a job run changes it.
    due.jobsPending ??= pendingJobs(this.store).length > 0;
    const jobs = due.jobsPending ? now : null;
    const candidates = [tasks, notifications, due.subscriberCheckAt, due.retentionAt, jobs].filter((at): at is number => at !== null);
    const next = candidates.length ? Math.min(...candidates) : null;
    if (next === null) {
      if (due.alarmAt !== null) await this.ctx.storage.deleteAlarm();
      due.alarmAt = null;
      return;
    }
    // An alarm earlier than needed is harmless (it finds little to do and re-arms); moving it
    // later on every change would cost a storage write per batch. So it only moves earlier,
    // or is set when none is pending.
    const at = Math.max(next, Date.now());
    if (due.alarmAt === null || at < due.alarmAt || due.alarmAt < Date.now()) {
      await this.ctx.storage.setAlarm(at);
      due.alarmAt = at;
    }
  }

  /** Makes sure the alarm fires no later than `at`. */
  async #ensureAlarm(at: number): Promise<void> {
    if (this.#due.alarmAt !== null && this.#due.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.#due.alarmAt = at;
  }
}

// Every RPC, fetch and alarm of an app's object is a billed Durable Object request.
meterRequests(AppQueue, ["webSocketMessage", "webSocketClose", "webSocketError"]);
