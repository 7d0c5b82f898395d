/**
 * The control API's task operations (SPEC §4, §7) inside the object that stores the tasks, once
 * the caller is let through: read, list, cancel, retry, and the bulk jobs redrive and purge. On
 * the app's own object of an app with shards, listings and bulk jobs span every shard too.
 */
import type { AppConfig } from "../config/app-config";
import { fail, ok, outcomeOf, type Outcome } from "../http/errors";
import { ADMIN } from "../auth/authenticate";
import type { TaskMessage, TaskRecord } from "../shared/types";
import { mergePages, sumCounts } from "../shards/app-wide";
import type { ShardHome } from "../shards/shard-home";
import { TASK_NOT_FOUND } from "./access";
import type { Alarm } from "./alarm";
import { parsePurge, parseRedrive, runJob } from "./bulk";
import type { Purged, Redriven, TaskPage, TaskQuery } from "./contract";
import type { Outbox } from "./outbox";
import type { StateMachine } from "./state-machine";
import { toRecord, type AppStore } from "./store";

export type Reconciled = "resent" | "rescheduled" | "running" | "finished" | "gone";

export interface TaskControlHost {
  store(): AppStore;
  readonly machine: StateMachine;
  readonly alarm: Alarm;
  readonly outbox: Outbox;
  readonly home: ShardHome;
  /** Whether this object is a shard (it answers for itself alone). */
  isShard(): boolean;
  /** After task writes: subscribers told, messages sent, the alarm re-armed. */
  afterWrites(): Promise<void>;
}

export class TaskControl {
  readonly #host: TaskControlHost;

  constructor(host: TaskControlHost) {
    this.#host = host;
  }

  get(config: AppConfig, taskId: string): Outcome<TaskRecord> {
    const task = this.#host.store().tasks.get(taskId);
    return task ? ok(toRecord(task, config.name)) : TASK_NOT_FOUND();
  }

  /** A page of tasks, newest first: ids below `query.below` (a cursor, a time) and from `query.from` (a time). */
  async list(config: AppConfig, query: TaskQuery): Promise<TaskPage> {
    const { state, limit } = query;
    const rows = this.#host.store().reads.list(state, limit + 1, query.below, query.from);
    const page = rows.slice(0, limit);
    const own = {
      tasks: page.map((row) => toRecord(row, config.name, false)),
      cursor: rows.length > limit ? page[page.length - 1]!.id : null,
    };
    return this.#host.isShard() ? own : mergePages([own, ...(await this.#host.home.pages(query))], limit);
  }

  /** Waiting → 11 with error "canceled". */
  async cancel(config: AppConfig, taskId: string): Promise<Outcome<TaskRecord>> {
    const tasks = this.#host.store().tasks;
    const task = tasks.get(taskId);
    if (!task) return TASK_NOT_FOUND();
    if (task.state !== 0) return fail(409, "task_not_waiting", "only a waiting task can be canceled");
    this.#host.machine.end(taskId, 0, 11, Date.now(), "canceled");
    await this.#host.afterWrites();
    return ok(toRecord(tasks.get(taskId)!, config.name));
  }

  /** Failed → waiting, with a fresh attempt budget, sent at once. */
  async retry(config: AppConfig, taskId: string): Promise<Outcome<TaskRecord>> {
    const tasks = this.#host.store().tasks;
    const task = tasks.get(taskId);
    if (!task) return TASK_NOT_FOUND();
    if (task.state !== 11) return fail(409, "task_not_failed", "only a failed task can be retried");
    tasks.resetForRetry(taskId, Date.now(), config.retry.max_attempts);
    this.#host.alarm.taskWaiting(Date.now(), config.retention * 1000); // its retention starts again
    await this.#host.outbox.flush(config);
    await this.#host.alarm.scheduleNext();
    return ok(toRecord(tasks.get(taskId)!, config.name));
  }

  /**
   * Re-runs failed tasks matching `input` (created since/until, last status) with a fresh
   * attempt budget, each exactly once; with `dry_run` only counts them. The first batch runs
   * now, the rest one batch per alarm.
   */
  async redrive(config: AppConfig, input: unknown): Promise<Outcome<Redriven>> {
    const own = await this.#redrive(config, input);
    if (!own.ok || this.#host.isShard()) return own;
    const shards = await this.#host.home.each(
      async (shard) => (await shard.redrive(ADMIN, input)) as Outcome<Redriven>,
    );
    return ok(sumCounts([own.value, ...shards.flatMap((one) => (one.ok ? [one.value] : []))]) as Redriven);
  }

  async #redrive(config: AppConfig, input: unknown): Promise<Outcome<Redriven>> {
    const request = outcomeOf(() => parseRedrive(input, Date.now()));
    if (!request.ok) return request;
    const { criteria, dryRun } = request.value;
    const store = this.#host.store();
    const matched = store.reads.countFailedMatching(criteria);
    if (dryRun || matched === 0) return ok({ matched, retried: 0, remaining: dryRun ? matched : 0 });
    const retried = runJob(store, config, {
      kind: "redrive",
      redrive: criteria,
      untilMs: criteria.untilMs,
      cursor: "",
    });
    this.#host.alarm.jobsChanged();
    await this.#host.afterWrites();
    return ok({ matched, retried, remaining: Math.max(0, matched - retried) });
  }

  /** Drops every waiting task (Cloud Tasks' purge): the first batch now, the rest by the alarm. */
  async purge(config: AppConfig, input: unknown): Promise<Outcome<Purged>> {
    const own = await this.#purge(config, input);
    if (!own.ok || this.#host.isShard()) return own;
    const shards = await this.#host.home.each(async (shard) => (await shard.purge(ADMIN, input)) as Outcome<Purged>);
    return ok(sumCounts([own.value, ...shards.flatMap((one) => (one.ok ? [one.value] : []))]) as Purged);
  }

  async #purge(config: AppConfig, input: unknown): Promise<Outcome<Purged>> {
    const request = outcomeOf(() => parsePurge(input));
    if (!request.ok) return request;
    const store = this.#host.store();
    const waiting = store.tasks.counts()["waiting"] ?? 0;
    const deleted = runJob(store, config, { kind: "purge", untilMs: Date.now() + 1, cursor: "" });
    this.#host.alarm.jobsChanged();
    await this.#host.afterWrites();
    return ok({ deleted, remaining: Math.max(0, waiting - deleted) });
  }

  /**
   * A queue message the consumer gave up on (the dead-letter queue): a task that still waits is
   * sent again from the outbox, a pending notification is rescheduled; a running task is left to
   * its lease and a finished or deleted one needs nothing. Answers what was done.
   */
  async reconcile(config: AppConfig, message: TaskMessage): Promise<Reconciled> {
    const store = this.#host.store();
    if (message.notify) {
      if (!store.notifications.get(message.id, message.notify)) return "gone";
      store.notifications.reschedule(message.id, message.notify, Date.now());
      await this.#host.alarm.scheduleNext();
      return "rescheduled";
    }
    const state = store.tasks.stateOf(message.id);
    if (state === null) return "gone";
    if (state === 1) return "running";
    if (state !== 0) return "finished";
    store.tasks.clearDispatched([message.id]);
    await this.#host.outbox.flush(config);
    await this.#host.alarm.scheduleNext();
    return "resent";
  }
}
