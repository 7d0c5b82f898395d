/**
 * The app object's one alarm, multiplexed over every duty that falls due (PLATFORM: one alarm
 * per object): subscriber heartbeats, retention (expiring unfinished tasks, deleting old
 * results), leases whose consumer vanished, bulk jobs, statistics, and the outbox's re-sends,
 * delays and retries. The next wake-up is computed from SQLite and from what is kept here in
 * memory about when duties fall due, so it need not be asked after every commit. Alarms are
 * at-least-once and may fire early or late: every duty is idempotent.
 */
import type { AppConfig } from "../config/app-config";
import { log } from "../shared/log";
import { pendingJobs, runJob } from "./bulk";
import { checkAt } from "./heartbeat";
import { REDISPATCH_AFTER_MS, type Outbox } from "./outbox";
import type { StateMachine } from "./state-machine";
import type { AppStore } from "./store";
import type { Subscribers } from "./subscribers";

/** Tasks expired, and finished tasks deleted, per alarm at most. */
export const RETENTION_BATCH = 500;

/** What the alarm needs from the object that owns it. */
export interface AlarmHost {
  config(): AppConfig | null;
  store(): AppStore;
  readonly subscribers: Subscribers;
  readonly machine: StateMachine;
  readonly outbox: Outbox;
  /** Writes the delivery statistics (forced: even within 10 s of the last write). */
  saveStats(force: boolean): void;
  /** Tells subscribers of what the alarm's writes finished and sends what they made due. */
  sendCommitted(): Promise<void>;
  /** The host's own duties: a shard's unreported results, the app's own object's shards past retention. */
  readonly duties: {
    /** When one falls due; null: none. */
    wakeAt(nowMs: number): number | null;
    run(nowMs: number): Promise<void>;
  };
}

export class Alarm {
  readonly #storage: DurableObjectStorage;
  readonly #host: AlarmHost;
  /** The alarm time as last set by this instance; avoids a storage write per submit. */
  #alarmAt: number | null = null;
  /** When the oldest unfinished task expires (never later than the truth); undefined = look it up. */
  #retentionAt: number | null | undefined = undefined;
  /** When subscriber heartbeats must next be checked; undefined = not known since wake-up. */
  #subscriberCheckAt: number | null | undefined = undefined;
  /** Whether a bulk job waits for the alarm; undefined = look it up (after a job ran, on wake-up). */
  #jobsPending: boolean | undefined = undefined;

  constructor(storage: DurableObjectStorage, host: AlarmHost) {
    this.#storage = storage;
    this.#host = host;
  }

  /** On wake-up: local dev does not persist alarms across restarts (workerd#2927), so re-arm from SQLite. */
  async restore(): Promise<void> {
    this.#alarmAt = await this.#storage.getAlarm();
    // Also with an alarm set: it may be for a later duty while a message sent just before the
    // restart waits to be re-sent (scheduleNext only moves the alarm earlier).
    await this.scheduleNext();
  }

  /** The app was deleted (its alarm with it): nothing is known of when duties fall due. */
  forget(): void {
    this.#alarmAt = null;
    this.#retentionAt = undefined;
    this.#subscriberCheckAt = undefined;
    this.#jobsPending = undefined;
  }

  /** A task began to wait at `now` (accepted, or a failed one retried): with no unfinished task before, its retention ends first. */
  taskWaiting(now: number, retentionMs: number): void {
    if (this.#retentionAt === null) this.#retentionAt = now + retentionMs;
  }

  /** A bulk job ran or was started: whether one waits is looked up again, and (a redrive restarts tasks) retention's deadline. */
  jobsChanged(): void {
    this.#jobsPending = undefined;
    this.#retentionAt = undefined;
  }

  /** A subscriber was accepted at `now`: its heartbeat deadline is checked in time. */
  async subscriberAccepted(now: number): Promise<void> {
    this.#subscriberCheckAt = Math.min(this.#subscriberCheckAt ?? Infinity, checkAt(now));
    await this.ensure(checkAt(now));
  }

  /** The alarm fired: every duty that is due, each bounded, then the next wake-up. */
  async run(): Promise<void> {
    this.#alarmAt = null;
    const host = this.#host;
    try {
      const config = host.config();
      if (!config) return;
      const now = Date.now();
      const store = host.store();
      // Heartbeats first: enforcing them must not depend on the task work below succeeding.
      this.#subscriberCheckAt = host.subscribers.reap(now);
      const retentionMs = config.retention * 1000;
      // Bounded batches: a huge backlog past retention takes several alarms, never one that fails.
      const expired = store.tasks.unfinishedStartedBefore(now - retentionMs, RETENTION_BATCH);
      for (const task of expired) host.machine.end(task.id, task.state, 11, now, "expired");
      // Results go a partition at a time (a table dropped whole): no batch to bound.
      store.tasks.retire(now, retentionMs);
      if (expired.length === RETENTION_BATCH) this.#retentionAt = now + 1;
      // The oldest unfinished task only gets newer (new tasks are newer, finished ones leave),
      // so a known deadline can only be early, never late: look it up again only once it passed.
      // (The lookup walks the primary key past finished tasks; doing it on every alarm cost
      // half the object's CPU while draining a backlog.)
      const retentionAt = this.#retentionAt;
      if (retentionAt !== undefined && retentionAt !== null && retentionAt <= now) this.#retentionAt = undefined;
      // Bounded too: a lease still expired after this batch keeps the next alarm due at once.
      for (const task of store.tasks.expiredLeases(now, RETENTION_BATCH)) host.machine.attemptLost(task, now);
      // One batch of each bulk job (redrive, purge); what remains waits for the next alarm.
      const jobs = pendingJobs(store);
      for (const job of jobs) runJob(store, config, job);
      if (jobs.length > 0) this.jobsChanged();
      this.#jobsPending = undefined;
      host.saveStats(true);
      store.tasks.checkpoint(now);
      host.outbox.forgetLost(now);
      await host.sendCommitted();
      await host.duties.run(now);
    } catch (error) {
      log("error", "alarm_failed", { app: host.config()?.name }, error);
      throw error; // the runtime retries a throwing alarm
    } finally {
      await this.scheduleNext();
    }
  }

  /** Sets the alarm to the next moment task work is due (one alarm multiplexes all duties). */
  async scheduleNext(): Promise<void> {
    const config = this.#host.config();
    if (!config) return;
    const store = this.#host.store();
    const outbox = this.#host.outbox;
    // While sending waits (a full window, a limit, a backoff), heartbeats and retention do not.
    const now = Date.now();
    const sending = outbox.sendingWake(config, now);
    const retentionMs = config.retention * 1000;
    const paused = config.state === "Paused";
    // Messages sent before this may be lost, once 30 s have passed since their send.
    const lostSentBefore = outbox.lostCutoff(now);
    const tasks = store.tasks.nextWakeMs(
      REDISPATCH_AFTER_MS,
      lostSentBefore,
      retentionMs,
      paused,
      sending.blocked,
      sending.notBefore,
    );
    const notifications = outbox.notBefore(store.notifications.nextWakeMs(REDISPATCH_AFTER_MS, lostSentBefore));
    // Messages this instance sent wait while consumers claim; look again once they may be idle.
    const idleCheck = store.tasks.inFlight() > 0 ? outbox.consumersIdleAt(now) : null;
    if (this.#subscriberCheckAt === undefined) this.#subscriberCheckAt = this.#host.subscribers.reap(Date.now());
    if (this.#retentionAt === undefined) this.#retentionAt = store.tasks.unfinishedRetentionDueMs(retentionMs);
    // Read once, not after every commit: only a job run changes it.
    this.#jobsPending ??= pendingJobs(store).length > 0;
    const jobs = this.#jobsPending ? now : null;
    const own = this.#host.duties.wakeAt(now);
    const candidates = [tasks, notifications, idleCheck, this.#subscriberCheckAt, this.#retentionAt, jobs, own];
    const due = candidates.filter((at): at is number => at !== null);
    const next = due.length ? Math.min(...due) : null;
    if (next === null) {
      if (this.#alarmAt !== null) await this.#storage.deleteAlarm();
      this.#alarmAt = null;
      return;
    }
    // An alarm earlier than needed is harmless (it finds little to do and re-arms); moving it
    // later on every change would cost a storage write per batch. So it only moves earlier,
    // or is set when none is pending.
    const at = Math.max(next, Date.now());
    if (this.#alarmAt === null || at < this.#alarmAt || this.#alarmAt < Date.now()) {
      await this.#storage.setAlarm(at);
      this.#alarmAt = at;
    }
  }

  /** Makes sure the alarm fires no later than `at`. */
  async ensure(at: number): Promise<void> {
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    await this.#storage.setAlarm(at);
    this.#alarmAt = at;
  }
}
