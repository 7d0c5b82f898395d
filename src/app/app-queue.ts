/**
 * AppQueue: one Durable Object per app, owning its config, task records and outbox in SQLite,
 * and one per shard of an app with `shards` > 1 (shards/: the app's own object keeps the config,
 * keys and subscribers; each shard a copy, and its tasks). A shell: each duty has a helper
 * (store, access, admission, outbox, state machine, feed, alarm, shards), and the methods below
 * are grouped by caller: submit, the queue consumer, control, shards, feed, alarm.
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
import { APP_NOT_FOUND, Access, SHARD_NOT_OPEN, TASK_NOT_FOUND } from "./access";
import { Alarm } from "./alarm";
import { Admission } from "./admission";
import { AppKeys, type CreatedKey, type KeyView } from "./app-keys";
import { Attempts } from "./attempts";
import { TaskControl, type Reconciled } from "./task-control";
import type { DeliveryState, Purged, Redriven, SubmitInput, Submitted, TaskPage, TaskQuery } from "./contract";
import { GroupCommit } from "./group-commit";
import { Feed } from "./feed";
import { beginNotifications, finishNotifications } from "./notifications";
import { Outbox } from "./outbox";
import { rotated, signingSecretsOf, type AppIdentity } from "./signing-secrets";
import { StateMachine } from "./state-machine";
import { AppStats, statsReport } from "./stats";
import { openStore, toRecord, type AppStore } from "./store";
import { KEY_REVOKED_CLOSE_CODE, Subscribers } from "./subscribers";
import { timeInside, type ShardPlace } from "../shards/routing";
import { ShardHome, type ShardStub } from "../shards/shard-home";
import { ShardReports, type ReportReceipt, type ShardResult } from "../shards/shard-reports";
import { activeShards, recordsOf, resultsAfter, shardDone, storeSnapshot } from "../shards/shard-sync";
import type { ShardSnapshot } from "../shards/shard-sync";

export class AppQueue extends DurableObject<Env> {
  /** The app's SQLite tables (replaced when the app is deleted: deleteAll drops them). */
  protected store!: AppStore;
  /** Adds the rows read and written by the statements run so far to the cost meters. */
  #settleSql!: () => void;
  #keys!: AppKeys;
  #config: AppConfig | null = null;
  #identity: AppIdentity | null = null;
  /** Set when this object is a shard of its app (shards/routing.ts); null: the app's own object. */
  #place: ShardPlace | null = null;
  /** The app's own object's side of its shards. */
  readonly #home: ShardHome;
  /** A shard's side: its results, reported to the app's own object. */
  readonly #reports: ShardReports;
  #undoGroupReports: () => void = () => {};
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
  readonly #tasks: TaskControl;
  readonly #attempts: Attempts;
  /** Result frames for subscribers, sent once the writes that made them are committed. */
  #pendingBroadcasts: { seq: number; frame: string }[] = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Runs on every wake-up, so it stays cheap: a schema version check, two small reads.
    this.#open();
    this.#subscribers = new Subscribers(ctx);
    this.#home = new ShardHome({
      stub: (name) => env.APP_QUEUE.get(env.APP_QUEUE.idFromName(name)) as unknown as ShardStub,
      sql: ctx.storage.sql,
      meta: () => this.store.meta,
      config: () => this.#config,
      identity: () => this.#identity,
      keys: () => this.#keys.sealed(),
      log: () => this.store.tasks.results,
    });
    this.#reports = new ShardReports(
      (results) => this.#home.stub(this.#place!.app).reportResults(this.#place!.name, results),
      (after) => resultsAfter(this.store, this.#config?.name ?? "", after),
    );
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
        // A shard's app hears of it (then its subscribers); subscribers hear of it once the writes are committed.
        if (this.#config && this.#place) this.#reports.add(seq, toRecord(task, this.#config.name));
        else if (this.#config && this.#subscribers.open().length > 0)
          this.#tell(seq, toRecord(task, this.#config.name));
      },
    });
    this.#group = new GroupCommit(ctx.storage, {
      beginGroup: () => {
        this.#undoGroupReports = this.#reports.mark();
        this.#outbox.beginGroup();
        this.store.tasks.openCountBatch();
      },
      checkpoint: () => {
        const broadcasts = this.#pendingBroadcasts.length;
        const undoOutbox = this.#outbox.checkpoint();
        const undoCounts = this.store.tasks.countCheckpoint();
        const undoReports = this.#reports.mark();
        return () => {
          undoReports();
          this.#home.map.forget();
          this.#pendingBroadcasts.length = broadcasts;
          undoOutbox();
          undoCounts();
        };
      },
      beforeCommit: () => this.store.tasks.closeCountBatch(),
      discard: () => {
        this.#undoGroupReports();
        this.#home.map.forget();
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
      (refs) => this.#home.records(this.#config?.name ?? "", refs),
    );
    this.#alarm = new Alarm(ctx.storage, {
      config: () => this.#config,
      store: () => this.store,
      subscribers: this.#subscribers,
      machine: this.#machine,
      outbox: this.#outbox,
      saveStats: (force) => this.#saveStats(force),
      sendCommitted: () => this.#sendCommitted(true),
      duties: {
        wakeAt: (now) =>
          this.#place ? this.#reports.dueAt(now, this.store.tasks.currentSeq()) : this.#home.retireAt(),
        run: async (now) => void (this.#place ? undefined : await this.#home.retire(now)),
      },
    });
    const alarm = this.#alarm;
    this.#attempts = new Attempts(this.#group, this.#machine, () => this.#config?.name);
    this.#tasks = new TaskControl({
      store: () => this.store,
      machine: this.#machine,
      alarm,
      outbox: this.#outbox,
      home: this.#home,
      isShard: () => this.#place !== null,
      afterWrites: () => this.#afterWrites(),
    });
    void ctx.blockConcurrencyWhile(() => alarm.restore());
  }

  /** Opens the store and reads the app from it: on wake-up, and after its tables were dropped. */
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
    const place = this.store.exists() ? this.store.meta.get("shard") : null;
    this.#config = config ? normalizeConfig(JSON.parse(config) as AppConfig) : null;
    this.#identity = identity ? (JSON.parse(identity) as AppIdentity) : null;
    this.#place = place ? (JSON.parse(place) as ShardPlace) : null;
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
    if (input.shard !== undefined && input.shard !== this.#place?.name) return SHARD_NOT_OPEN();
    const auth = await this.#access.submitter(input.caller, input.request.body, input.options.callback !== null);
    if (!auth.ok) return auth;
    const config = this.#config;
    if (config && !this.#place && activeShards(config) > 1) return this.#home.forward(input, config);
    // This submission's savepoint rolled back: nothing of it was written, nothing accepted is lost.
    const outcome = await this.#group
      .run(() => this.#accept(input, Date.now()))
      .catch((error: unknown) => storageFailure(error));
    return outcome.ok && config
      ? ok({ ...outcome.value, route: { shards: activeShards(config), partition: config.partition } })
      : outcome;
  }

  #accept(input: SubmitInput, now: number): Outcome<Submitted> {
    const config = this.#config;
    const identity = this.#identity;
    if (!config || !identity) return APP_NOT_FOUND();
    const place = this.#place;
    const outcome = accept(
      {
        config,
        tasks: this.store.tasks,
        admission: this.#admission,
        outbox: this.#outbox,
        newId: () =>
          place
            ? this.store.tasks.nextId(identity.number, timeInside(place, now), place.route, place.endMs - 1)
            : this.store.tasks.nextId(identity.number, now),
      },
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

  // The RPC methods are metered per call (meterRequests): the batched ones do not call the single ones.

  /** 0 → 1 when the task is due and the app active; otherwise says why not. */
  begin(taskId: string): Promise<BeginResult> {
    return this.#attempts.begin(taskId);
  }

  /** Begins several tasks in one RPC (the consumer's tasks of this app about to run), in one group commit. */
  beginMany(taskIds: string[], runs: (string | null)[] = []): Promise<BeginResult[]> {
    return this.#attempts.beginMany(taskIds, runs);
  }

  /** Records attempt `attempt`'s result (attempts.ts). */
  finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult> {
    return this.#attempts.finish(taskId, attempt, result);
  }

  /** Records several attempts' results in one RPC, in one group commit. */
  finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]> {
    return this.#attempts.finishMany(reports);
  }

  /** Starts several notification attempts (POSTs of a finished task's record) in one RPC (notifications.ts). */
  async beginNotifications(refs: NotificationRef[]): Promise<(NotificationDelivery | null)[]> {
    if (!this.#config || !this.#identity) return refs.map(() => null);
    const begun = await beginNotifications(this.#group, this.store, this.#config, this.#identity, refs);
    if (begun.leaseUntilMs !== null) await this.#alarm.ensure(begun.leaseUntilMs);
    return begun.deliveries;
  }

  /** Ends several notification attempts (delivered, or retried with backoff) in one RPC (notifications.ts). */
  async finishNotifications(reports: NotificationReport[]): Promise<boolean[]> {
    if (!this.#config) return reports.map(() => true); // the app is gone, and its notifications with it
    return finishNotifications(this.#group, this.store, reports);
  }

  /** A queue message the consumer gave up on (the dead-letter queue): see TaskControl.reconcile. */
  async reconcile(message: TaskMessage): Promise<Reconciled> {
    return this.#config ? this.#tasks.reconcile(this.#config, message) : "gone";
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
    const counts = await this.#home.appCounts(this.store.tasks.counts());
    return ok({ config: guard.value, stats: counts, delivery: this.#admission.delivery(Date.now()) });
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
    await this.#configChanged(current, next);
    await this.#home.changed();
    return ok(next);
  }

  async #configChanged(previous: AppConfig | null, next: AppConfig): Promise<void> {
    if (previous && previous.state !== next.state) {
      // Messages sent before a pause were dropped by `begin`; send every waiting task afresh.
      this.store.tasks.forgetAllDispatches();
      if (next.state === "Active") await this.#outbox.flush(next);
    }
    await this.#alarm.scheduleNext();
  }

  /** A new signing secret, shown once; the previous one signs beside it for a day (signing-secrets.ts). */
  async rotateSigningSecret(
    caller: Caller,
  ): Promise<Outcome<{ signing_secret: string; previous_valid_until: number }>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    if (!this.#identity) return APP_NOT_FOUND();
    const next = rotated(this.#identity, Date.now());
    this.store.meta.set("identity", JSON.stringify(next));
    this.#identity = next;
    await this.#home.changed();
    return ok({
      signing_secret: next.signingSecret,
      previous_valid_until: Math.floor(next.previousSigningSecretUntilMs! / 1000),
    });
  }

  /** `GET /v1/apps/<name>/stats` (stats.ts), app-wide: with every shard's (shard-home.ts). */
  async stats(caller: Caller): Promise<Outcome<Record<string, unknown>>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    const now = Date.now();
    const own = statsReport(guard.value, this.store, this.#appStats(), this.#admission.delivery(now), now);
    return ok(await this.#home.appStats(own));
  }

  /** Deletes the app: config, tasks, keys and alarm. New submissions find no app at once. */
  async destroy(caller: Caller): Promise<Outcome<null>> {
    const guard = await this.#access.guard(caller, "manage");
    if (!guard.ok) return guard;
    for (const ws of this.#subscribers.open()) this.#subscribers.onClose(ws, 4404, "app deleted");
    await this.#home.dropAll();
    // Result seqs survive the app: a client resuming with a seq of the old app must not
    // drop the new app's results as already seen.
    const seq = this.store.tasks.currentSeq();
    await this.#wipe();
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
    const created = await this.#keys.create(guard.value.name, permissions, Date.now());
    if (created.ok) await this.#home.changed();
    return created;
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
    await this.#home.changed();
    return ok({ revoked: accessKey });
  }

  // ---- the control API: tasks (task-control.ts) -------------------------------------------

  async getTask(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#access.guard(caller, "query", TASK_NOT_FOUND);
    return guard.ok ? this.#tasks.get(guard.value, taskId) : guard;
  }

  async listTasks(caller: Caller, query: TaskQuery): Promise<Outcome<TaskPage>> {
    const guard = await this.#access.guard(caller, "query");
    return guard.ok ? ok(await this.#tasks.list(guard.value, query)) : guard;
  }

  async cancel(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#access.guard(caller, "manage", TASK_NOT_FOUND);
    return guard.ok ? this.#tasks.cancel(guard.value, taskId) : guard;
  }

  async retry(caller: Caller, taskId: string): Promise<Outcome<TaskRecord>> {
    const guard = await this.#access.guard(caller, "manage", TASK_NOT_FOUND);
    return guard.ok ? this.#tasks.retry(guard.value, taskId) : guard;
  }

  async redrive(caller: Caller, input: unknown): Promise<Outcome<Redriven>> {
    const guard = await this.#access.guard(caller, "manage");
    return guard.ok ? this.#tasks.redrive(guard.value, input) : guard;
  }

  async purge(caller: Caller, input: unknown): Promise<Outcome<Purged>> {
    const guard = await this.#access.guard(caller, "manage");
    return guard.ok ? this.#tasks.purge(guard.value, input) : guard;
  }

  // ---- shards: the app's own object and its shard objects (shards/) -----------------------

  /** Makes this object a shard of its app with the app's copy, or brings the copy up to date. */
  async syncShard(snapshot: ShardSnapshot): Promise<void> {
    if (this.#place && Number(this.store.meta.get("shard_version") ?? "0") >= snapshot.version) return;
    const previous = this.#config;
    this.store.create();
    this.ctx.storage.transactionSync(() => storeSnapshot(this.store.meta, this.#keys, snapshot));
    this.#config = normalizeConfig(snapshot.config);
    this.#identity = snapshot.identity;
    this.#place = snapshot.place;
    await this.#configChanged(previous, this.#config);
  }

  /** A shard's results (the app's own object): numbered in the app's sequence, told to subscribers. */
  async reportResults(shard: string, results: ShardResult[]): Promise<ReportReceipt> {
    return this.#group.run(() =>
      this.#config
        ? this.#home.take(shard, results, (record, ref) => this.#tell(this.store.tasks.numberResult(ref), record))
        : { reported: Number.MAX_SAFE_INTEGER },
    );
  }

  /** Records of a shard's tasks for a replay: null for one that is gone or no longer that result. */
  async shardRecords(refs: { id: string; seq: number }[]): Promise<(TaskRecord | null)[]> {
    return recordsOf(this.store, this.#config?.name ?? "", refs);
  }

  /** A shard's share of its app's statistics (JSON: app-wide.ts StatsShare), and the bytes it stores. */
  async shardStats(): Promise<{ stats: string; bytes: number } | null> {
    if (!this.#config) return null;
    const now = Date.now();
    const stats = statsReport(this.#config, this.store, this.#appStats(), this.#admission.delivery(now), now);
    return { stats: JSON.stringify(stats), bytes: this.ctx.storage.sql.databaseSize };
  }

  /** Empties a shard: its app deleted, or (`whenDone`) its partition past retention once nothing in it is left to do. */
  async dropShard(whenDone = false): Promise<boolean> {
    if (whenDone && !(await shardDone(this.store, this.#reports))) return false;
    await this.#wipe();
    return true;
  }

  /** Drops every table and the alarm, and what this instance knew of them. */
  async #wipe(): Promise<void> {
    this.#config = null;
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#open();
    this.#alarm.forget();
    this.#admission.reset();
    this.#outbox.reset();
    this.#reports.forget();
    this.#home.map.forget();
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
    this.#feed.message(ws, message, Date.now());
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.#feed.closed(ws, code, reason);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.#feed.failed(ws, error);
  }

  // ---- after writes, and the alarm: outbox, leases, retention, heartbeats, bulk jobs ----

  /** After task writes: tell subscribers, send what the commit made due, then re-arm the alarm. */
  async #afterWrites(): Promise<void> {
    this.#saveStats(false);
    await this.#sendCommitted();
    await this.#alarm.scheduleNext();
  }

  /** After task writes are committed: subscribers told, messages sent, results reported (the output gate holds them). */
  async #sendCommitted(awaitReports = false): Promise<void> {
    const broadcasts = this.#pendingBroadcasts;
    this.#pendingBroadcasts = [];
    for (const { seq, frame } of broadcasts) this.#subscribers.broadcast(seq, frame);
    // A shard's results go to its app's object; callers are not held for it (the alarm is).
    const reported = this.#place ? this.#reports.flush() : null;
    if (this.#config) await this.#outbox.sendCommitted(this.#config);
    if (awaitReports) await reported;
  }

  /** Queues result `seq` for the subscribers, sent once its writes are committed. */
  #tell(seq: number, record: TaskRecord): void {
    if (this.#subscribers.open().length > 0)
      this.#pendingBroadcasts.push({ seq, frame: JSON.stringify({ ...record, seq }) });
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
