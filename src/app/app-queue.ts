/**
 * AppQueue: one Durable Object per app, owning its config, task records and outbox in SQLite. A
 * shell: each duty has a helper (store, access, admission, outbox, state machine, feed, alarm),
 * and the methods below are grouped by caller: submit, the queue consumer, control, feed, alarm.
 *
 * Durability: a task is answered with its id only after the insert (marked sent) commits; its
 * queue message goes after the commit (lingering up to 25 ms while new tasks keep coming), and a
 * failed send (or a message lost, as local Queues lose theirs on restart) is sent again by the
 * alarm. Queues deliver at least once and in no order, so `begin` and
 * `finish` are an idempotent state machine keyed by the attempt number: a duplicate message never
 * re-runs a finished task, and a stale `finish` never counts twice.
 */
import { DurableObject } from "cloudflare:workers";
import type { Permission } from "../auth/access-keys";
import type { Caller, Principal } from "../auth/authenticate";
import { masterSecret } from "../auth/key-vault";
import { applyPatch, normalizeConfig, type AppConfig } from "../config/app-config";
import type { ConfigRules } from "../config/rules";
import { fail, ok, outcomeOf, type Outcome } from "../http/errors";
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
  PutBack,
  TaskMessage,
  TaskRecord,
} from "../shared/types";
import { accept, storageFailure } from "./accept";
import { APP_NOT_FOUND, Access, TASK_NOT_FOUND } from "./access";
import { Alarm } from "./alarm";
import { Admission } from "./admission";
import { AppKeys, type CreatedKey, type KeyView } from "./app-keys";
import { parsePurge, parseRedrive, runJob } from "./bulk";
import type { DeliveryState, SubmitInput, Submitted, TaskPage, TaskQuery } from "./contract";
import { GroupCommit } from "./group-commit";
import { Feed } from "./feed";
import { beginNotifications, finishNotifications } from "./notifications";
import { Outbox } from "./outbox";
import { rotated, signingSecretsOf, type AppIdentity } from "./signing-secrets";
import { StateMachine } from "./state-machine";
import { AppStats, statsReport } from "./stats";
import { openStore, toRecord, type AppStore } from "./store";
import { KEY_REVOKED_CLOSE_CODE, Subscribers } from "./subscribers";

export class AppQueue extends DurableObject<Env> {
  /** The app's SQLite tables (replaced when the app is deleted: deleteAll drops them). */
  protected store!: AppStore;
  /** Adds the rows read and written by the statements run so far to the cost meters. */
  #settleSql!: () => void;
  #keys!: AppKeys;
  #config: AppConfig | null = null;
  #identity: AppIdentity | null = null;
  /** Delivery statistics; read from SQLite when first needed. */
  #stats: AppStats | undefined = undefined;
  readonly #access = new Access(
    () => this.#keys,
    () => this.#config,
  );
  readonly #subscribers: Subscribers;
  readonly #feed: Feed;
  readonly #alarm: Alarm;
  readonly #admission: Admission;
  readonly #outbox: Outbox;
  readonly #machine: StateMachine;
  readonly #group: GroupCommit;
  /** Result frames for subscribers, sent once the writes that made them are committed. */
  #pendingBroadcasts: { seq: number; frame: string }[] = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Runs on every wake-up, so it stays cheap: a schema version check, two small reads.
    this.#open();
    this.#subscribers = new Subscribers(ctx);
    this.#admission = new Admission(() => this.store);
    this.#outbox = new Outbox(
      () => this.store,
      () => this.env.TASKS,
      (at) => this.#alarm.ensure(at),
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
      released: (taskId, now) => this.#admission.release(taskId, now),
      announce: (task, seq) => {
        // Subscribers hear of it once the writes are committed.
        if (this.#config && this.#subscribers.open().length > 0) {
          this.#pendingBroadcasts.push({ seq, frame: JSON.stringify({ ...toRecord(task, this.#config.name), seq }) });
        }
      },
    });
    this.#group = new GroupCommit(ctx.storage, {
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
      afterCommit: () => (this.store.tasks.commitCountBatch(), this.#afterWrites()),
    });
    this.#feed = new Feed(
      this.#subscribers,
      () => this.store,
      () => this.#config,
    );
    this.#alarm = new Alarm(ctx.storage, {
      config: () => this.#config,
      store: () => this.store,
      subscribers: this.#subscribers,
      machine: this.#machine,
      outbox: this.#outbox,
      saveStats: (force) => this.#saveStats(force),
      sendCommitted: () => this.#sendCommitted(),
    });
    void ctx.blockConcurrencyWhile(() => this.#alarm.restore());
  }

  /**
   * Opens the store and reads the app from it, forgetting whatever was known of an earlier
   * store: on wake-up, and after `destroy` dropped the tables (this instance may live on and
   * serve a new app of the same name).
   */
  #open(): void {
    const metered = meteredSql(this.ctx.storage.sql);
    this.#settleSql = metered.settle;
    // An object that is no app (a name never created, or deleted) stays without tables: a request
    // that finds no app writes nothing (configure creates them).
    this.store = openStore(metered.sql, { create: false });
    this.#keys = new AppKeys(metered.sql, masterSecret(this.env));
    this.#stats = undefined;
    const config = this.store.exists() ? this.store.meta.get("config") : null;
    const identity = this.store.exists() ? this.store.meta.get("identity") : null;
    this.#config = config ? normalizeConfig(JSON.parse(config) as AppConfig) : null;
    this.#identity = identity ? (JSON.parse(identity) as AppIdentity) : null;
  }

  // ---- who may do what (access.ts) ---------------------------------------------------------

  /** Verifies a key of this app for a request about something else (another app, the app list). */
  async identify(caller: Caller, body: Uint8Array): Promise<Outcome<Principal>> {
    return this.#access.authorize(caller, null, body);
  }

  // ---- submit (the Worker's app hosts and front doors) -------------------------------------

  /**
   * Accepts a task. Concurrent submissions share one commit with each other and with the
   * consumer's begin/finish calls (group commit); the task's queue message is sent once that
   * commit is made, and the caller answered after both.
   */
  async submit(input: SubmitInput): Promise<Outcome<Submitted>> {
    const auth = await this.#access.submitter(input.caller, input.request.body, input.options.callback !== null);
    if (!auth.ok) return auth;
    // This submission's savepoint rolled back: nothing of it was written, nothing accepted is lost.
    return this.#group.run(() => this.#accept(input, Date.now())).catch((error: unknown) => storageFailure(error));
  }

  #accept(input: SubmitInput, now: number): Outcome<Submitted> {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return APP_NOT_FOUND();
    const outcome = accept(
      { config, identity, tasks: this.store.tasks, admission: this.#admission, outbox: this.#outbox },
      input,
      now,
    );
    // With no unfinished task before, a new one is now the oldest.
    if (outcome.ok && !outcome.value.deduplicated) this.#alarm.taskWaiting(now, config.retention * 1000);
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
  #begin(taskId: string, run?: string): Promise<BeginResult> {
    return this.#group.run(() => this.#machine.begin(taskId, Date.now(), run));
  }

  /**
   * Begins several tasks in one RPC (the consumer's tasks of this app about to run): each is a
   * `begin` of its own in the same group commit, named by `runs[i]` for a put-back (PutBack). One
   * that cannot be stored answers `{run: false, reason: "error"}` alone; its neighbours begin.
   */
  async beginMany(taskIds: string[], runs: (string | null)[] = []): Promise<BeginResult[]> {
    const settled = await Promise.allSettled(taskIds.map((taskId, i) => this.#begin(taskId, runs[i] ?? undefined)));
    return settled.map((outcome): BeginResult =>
      outcome.status === "fulfilled" ? outcome.value : { run: false, reason: "error" },
    );
  }

  /**
   * Records attempt `attempt`'s result; ignored unless that attempt is the one running. A
   * result that cannot be stored whole (a row over SQLite's limits) is stored without the
   * response's headers and body, so the attempt still counts and the task moves on.
   */
  finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult> {
    return this.#finish(taskId, attempt, result);
  }

  /**
   * Records several attempts' results in one RPC: each is a `finish` of its own in the same
   * group commit. One that cannot be stored answers null alone (the consumer tries it again).
   */
  async finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]> {
    const settled = await Promise.allSettled(
      reports.map(({ taskId, attempt, result }) => this.#finish(taskId, attempt, result)),
    );
    return settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : null));
  }

  async #finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult> {
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
    if (!this.#config || !this.#identity) return refs.map(() => null);
    const begun = await beginNotifications(this.#group, this.store, this.#config, this.#identity, refs);
    if (begun.leaseUntilMs !== null) await this.#alarm.ensure(begun.leaseUntilMs);
    return begun.deliveries;
  }

  /**
   * Ends several notification attempts (delivered, or retried with backoff until NOTIFY_RETRY is
   * spent) in one RPC, in one group commit; false for each that could not be stored.
   */
  async finishNotifications(reports: NotificationReport[]): Promise<boolean[]> {
    if (!this.#config) return reports.map(() => true); // the app is gone, and its notifications with it
    return finishNotifications(this.#group, this.store, reports);
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
      await this.#alarm.scheduleNext();
      return "rescheduled";
    }
    const state = this.store.tasks.stateOf(message.id);
    if (state === null) return "gone";
    if (state === 1) return "running";
    if (state !== 0) return "finished";
    this.store.tasks.clearDispatched([message.id]);
    await this.#outbox.flush(config);
    await this.#alarm.scheduleNext();
    return "resent";
  }

  // ---- the control API: the app ------------------------------------------------------------

  /** Makes this object the app `config.name`. 409 when it already is an app. */
  async configure(config: AppConfig, identity: AppIdentity): Promise<Outcome<AppConfig>> {
    if (this.#config) return fail(409, "app_exists", `app ${config.name} already exists`);
    this.store.create();
    this.store.meta.set("config", JSON.stringify(config));
    this.store.meta.set("identity", JSON.stringify(identity));
    this.#config = normalizeConfig(config);
    this.#identity = identity;
    return ok(config);
  }

  /** The app this object is, as the registry lists it; null when it is none (a create may have failed halfway). */
  async registration(): Promise<{ config: AppConfig; number: number } | null> {
    return this.#config && this.#identity ? { config: this.#config, number: this.#identity.number } : null;
  }

  /** The app's config and task counts (`GET /v1/apps/<name>`): never a secret. */
  async describe(
    caller: Caller,
  ): Promise<Outcome<{ config: AppConfig; stats: Record<string, number>; delivery: DeliveryState }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    return ok({
      config: guard.value,
      stats: this.store.tasks.counts(),
      delivery: this.#admission.delivery(Date.now()),
    });
  }

  /** Applies a validated partial update; resuming a paused app starts its waiting tasks. */
  async patchConfig(caller: Caller, patch: unknown, rules: ConfigRules): Promise<Outcome<AppConfig>> {
    const guard = await this.#access.guard(caller, "manage");
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
    await this.#alarm.scheduleNext();
    return ok(next);
  }

  /**
   * A new signing secret, shown once in the answer; the previous one keeps signing beside it
   * for a day (signing-secrets.ts), so origins can switch without refusing a delivery.
   */
  async rotateSigningSecret(
    caller: Caller,
  ): Promise<Outcome<{ signing_secret: string; previous_valid_until: number }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    if (!this.#identity) return APP_NOT_FOUND();
    const next = rotated(this.#identity, Date.now());
    this.store.meta.set("identity", JSON.stringify(next));
    this.#identity = next;
    return ok({
      signing_secret: next.signingSecret,
      previous_valid_until: Math.floor(next.previousSigningSecretUntilMs! / 1000),
    });
  }

  /**
   * `GET /v1/apps/<name>/stats`: counts by state (counters), the oldest waiting task's age,
   * attempts and successes over the last minute and hour, latency percentiles (histograms),
   * queue re-sends, the limits in force and the delivery state. Reads no task rows but one.
   */
  async stats(caller: Caller): Promise<Outcome<Record<string, unknown>>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    const now = Date.now();
    return ok(statsReport(guard.value, this.store, this.#appStats(), this.#admission.delivery(now), now));
  }

  /** Deletes the app: config, tasks, keys and alarm. New submissions find no app at once. */
  async destroy(caller: Caller): Promise<Outcome<null>> {
    const guard = await this.#access.guard(caller, "manage");
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
    this.#alarm.forget();
    this.#admission.reset();
    this.#outbox.reset();
    this.store.create();
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
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    return this.#keys.create(guard.value.name, permissions, Date.now());
  }

  async listKeys(caller: Caller): Promise<Outcome<KeyView[]>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    return ok(this.#keys.list());
  }

  async revokeKey(caller: Caller, accessKey: string): Promise<Outcome<{ revoked: string }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    if (!this.#keys.revoke(accessKey)) return fail(404, "key_not_found", `no such key: ${accessKey}`);
    this.#subscribers.closeOpenedBy(accessKey, KEY_REVOKED_CLOSE_CODE, "access key revoked");
    return ok({ revoked: accessKey });
  }

  // ---- the control API: tasks ------------------------------------------------------------

  async getTask(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#access.guard(caller, "query", TASK_NOT_FOUND);
    if (!guard.ok) return guard;
    const task = this.store.tasks.get(taskId);
    return task ? ok(toRecord(task, guard.value.name)) : TASK_NOT_FOUND();
  }

  /** A page of tasks, newest first: ids below `query.below` (a cursor, a time) and from `query.from` (a time). */
  async listTasks(caller: Caller, query: TaskQuery): Promise<Outcome<TaskPage>> {
    const guard = await this.#access.guard(caller, "query");
    if (!guard.ok) return guard;
    const { state, limit } = query;
    const rows = this.store.reads.list(state, limit + 1, query.below, query.from);
    const page = rows.slice(0, limit);
    return ok({
      tasks: page.map((row) => toRecord(row, guard.value.name, false)),
      cursor: rows.length > limit ? page[page.length - 1]!.id : null,
    });
  }

  /** Waiting → 11 with error "canceled". */
  async cancel(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#access.guard(caller, "manage", TASK_NOT_FOUND);
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
    const guard = await this.#access.guard(caller, "manage", TASK_NOT_FOUND);
    if (!guard.ok) return guard;
    const config = guard.value;
    const task = this.store.tasks.get(taskId);
    if (!task) return TASK_NOT_FOUND();
    if (task.state !== 11) return fail(409, "task_not_failed", "only a failed task can be retried");
    this.store.tasks.resetForRetry(taskId, Date.now(), config.retry.max_attempts);
    this.#alarm.taskWaiting(Date.now(), config.retention * 1000); // its retention starts again
    await this.#outbox.flush(config);
    await this.#alarm.scheduleNext();
    return ok(toRecord(this.store.tasks.get(taskId)!, config.name));
  }

  /**
   * Re-runs failed tasks matching `input` (created since/until, last status) with a fresh
   * attempt budget, each exactly once; with `dry_run` only counts them. The first batch runs
   * now, the rest one batch per alarm.
   */
  async redrive(
    caller: Caller,
    input: unknown,
  ): Promise<Outcome<{ matched: number; retried: number; remaining: number }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    const request = outcomeOf(() => parseRedrive(input, Date.now()));
    if (!request.ok) return request;
    const { criteria, dryRun } = request.value;
    const matched = this.store.reads.countFailedMatching(criteria);
    if (dryRun || matched === 0) return ok({ matched, retried: 0, remaining: dryRun ? matched : 0 });
    const retried = runJob(this.store, guard.value, {
      kind: "redrive",
      redrive: criteria,
      untilMs: criteria.untilMs,
      cursor: "",
    });
    this.#alarm.jobsChanged();
    await this.#afterWrites();
    return ok({ matched, retried, remaining: Math.max(0, matched - retried) });
  }

  /** Drops every waiting task (Cloud Tasks' purge): the first batch now, the rest by the alarm. */
  async purge(caller: Caller, input: unknown): Promise<Outcome<{ deleted: number; remaining: number }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    const request = outcomeOf(() => parsePurge(input));
    if (!request.ok) return request;
    const waiting = this.store.tasks.counts()["waiting"] ?? 0;
    const deleted = runJob(this.store, guard.value, { kind: "purge", untilMs: Date.now() + 1, cursor: "" });
    this.#alarm.jobsChanged();
    await this.#afterWrites();
    return ok({ deleted, remaining: Math.max(0, waiting - deleted) });
  }

  // ---- the live feed: WebSocket subscribers ----------------------------------------------

  /** The WebSocket upgrade of the live feed, authenticated by the Worker (feed.ts). */
  override async fetch(request: Request): Promise<Response> {
    const now = Date.now();
    const response = this.#feed.upgrade(request, now);
    if (response.status === 101) await this.#alarm.subscriberAccepted(now);
    return response;
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      this.#feed.onMessage(ws, message, Date.now());
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
    await this.#alarm.scheduleNext();
  }

  /**
   * After task writes are committed: tell subscribers, send the new tasks' queue messages,
   * refill the queue window and send due notifications. The output gate holds all of it
   * until the writes are durable.
   */
  async #sendCommitted(): Promise<void> {
    const broadcasts = this.#pendingBroadcasts;
    this.#pendingBroadcasts = [];
    for (const { seq, frame } of broadcasts) this.#subscribers.broadcast(seq, frame);
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
    await this.#alarm.run();
  }
}

// Every RPC, fetch and alarm of an app's object is a billed Durable Object request.
meterRequests(AppQueue, ["webSocketMessage", "webSocketClose", "webSocketError"]);
