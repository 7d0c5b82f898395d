/**
 * The app's tasks table: its writes (each keeping the state counters and the in-flight count
 * in step) and the queries the object runs. Every method is synchronous: writes with no `await`
 * between them commit together (one implicit transaction), and the object's input gate keeps
 * other events out while they run.
 */
import { meters } from "../../shared/meters";
import { createdMsOf, timePrefix } from "../../shared/task-id";
import type { TaskState } from "../../shared/types";
import type { MetaStore } from "./meta";
import type { AttemptRecord, NewTask, ReadMeter, RedriveCriteria, TaskRow } from "./rows";
import {
  FAILED_MATCHING,
  STATE_INDEX,
  SUMMARY_COLUMNS,
  attemptAssignments,
  blob,
  failedMatchingBindings,
  rowBytes,
} from "./sql";

/** How much one turn of the resume replay may read: the object has 128 MB in all. */
export const REPLAY_PAGE_BYTES = 8 * 1024 * 1024;

export class TaskStore {
  readonly #sql: SqlStorage;
  readonly #meta: MetaStore;

  /** The largest page of replay reads since the object started (tests read it). */
  readonly largestReplayPage: ReadMeter = { rows: 0, bytes: 0 };

  /**
   * Count changes by state gathered while a batch is open (a group commit's transaction), written
   * as one counter update per state when it closes; outside a batch each change is written at once.
   */
  #countBatch: Map<TaskState, number> | null = null;

  /**
   * Waiting tasks with a queue message out (state 0, dispatched): counted once, then kept with
   * every write that changes it (the queue window asks after every commit; a COUNT over the
   * in-flight index read up to 500 rows each time). Null: count again (after a rollback).
   */
  #inFlight: number | null = null;

  /** The latest seq handed out, as kept in meta "seq" (null: read it); unwritten while a batch is open. */
  #seq: number | null = null;
  #seqUnwritten = false;

  constructor(sql: SqlStorage, meta: MetaStore) {
    this.#sql = sql;
    this.#meta = meta;
  }

  /** `n` tasks moved from state `from` to `to` (null: inserted / deleted). */
  #counted(from: TaskState | null, to: TaskState | null, n = 1): void {
    if (from === to || n === 0) return;
    const changes: [TaskState, number][] = [];
    if (from !== null) changes.push([from, -n]);
    if (to !== null) changes.push([to, n]);
    if (this.#countBatch) {
      for (const [state, delta] of changes) this.#countBatch.set(state, (this.#countBatch.get(state) ?? 0) + delta);
      return;
    }
    for (const [state, delta] of changes)
      this.#sql.exec("UPDATE task_counts SET n = n + ? WHERE state = ?", delta, state);
  }

  /** Count changes from now on are gathered, to be written by {@link closeCountBatch} in the same transaction. */
  openCountBatch(): void {
    this.#countBatch = new Map();
  }

  /** Writes the gathered count changes (one update per state) and stops gathering. */
  closeCountBatch(): void {
    const batch = this.#countBatch;
    this.#countBatch = null;
    if (this.#seqUnwritten && this.#seq !== null) this.#meta.set("seq", String(this.#seq));
    this.#seqUnwritten = false;
    if (!batch) return;
    for (const [state, delta] of batch) {
      if (delta !== 0) this.#sql.exec("UPDATE task_counts SET n = n + ? WHERE state = ?", delta, state);
    }
  }

  /** The transaction rolled back: its gathered count changes never happened. */
  discardCountBatch(): void {
    this.#countBatch = null;
    this.#inFlight = null;
    this.#seq = null;
    this.#seqUnwritten = false;
  }

  /** Reads again what it keeps in memory (after a write to the tables that bypassed the store). */
  forgetCaches(): void {
    this.#inFlight = null;
  }

  #inFlightBy(delta: number): void {
    if (this.#inFlight !== null) this.#inFlight += delta;
  }

  /** A snapshot of the gathered count changes; calling it restores them (a savepoint rolled back). */
  countCheckpoint(): () => void {
    const snapshot = this.#countBatch ? new Map(this.#countBatch) : null;
    // Seqs an undone operation took are handed out again: it never announced them.
    const seq = this.#seq;
    return () => {
      if (this.#countBatch && snapshot) this.#countBatch = snapshot;
      this.#seq = seq;
      this.#inFlight = null; // what the rolled-back operation changed is unknown: count again
    };
  }

  /** The latest result sequence number handed out (0 before the first result). */
  currentSeq(): number {
    this.#seq ??= Number(this.#meta.get("seq") ?? "0");
    return this.#seq;
  }

  /**
   * The next result sequence number (SPEC §6), strictly increasing per app. Within a batch (a
   * group commit) it is written once, at the batch's end, in the same transaction.
   */
  nextSeq(): number {
    const seq = this.currentSeq() + 1;
    this.#seq = seq;
    if (this.#countBatch) this.#seqUnwritten = true;
    else this.#meta.set("seq", String(seq));
    return seq;
  }

  /** Seqs continue from `seq` (a re-created app never hands out seqs below its predecessor's). */
  setSeq(seq: number): void {
    this.#seq = seq;
    this.#meta.set("seq", String(seq));
  }

  insert(task: NewTask): void {
    const { request } = task;
    this.#sql.exec(
      `INSERT INTO tasks (id, req_id, method, path, raw_query, header, body, created_ms, state, eta_ms,
         dispatched_ms, dedup_id, max_attempts, timeout, callback, fail_fast)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)`,
      task.id,
      task.reqId,
      request.method,
      request.path,
      request.raw_query,
      JSON.stringify(request.header),
      blob(request.body),
      task.createdMs,
      task.etaMs,
      task.dispatchedMs,
      task.deduplicationId,
      task.maxAttempts,
      task.timeout,
      task.callback,
      task.failFast ? 1 : null,
    );
    this.#counted(null, 0);
    if (task.dispatchedMs !== null) this.#inFlightBy(1);
  }

  get(id: string): TaskRow | null {
    return this.#sql.exec<TaskRow>("SELECT * FROM tasks WHERE id = ?", id).toArray()[0] ?? null;
  }

  /** A task's state alone (no row but its state column read); null when there is no such task. */
  stateOf(id: string): TaskState | null {
    const row = this.#sql.exec<{ state: TaskState }>("SELECT state FROM tasks WHERE id = ?", id).toArray()[0];
    return row ? row.state : null;
  }

  /** A task with this deduplication id created after `sinceMs`, if any. */
  findDuplicate(deduplicationId: string, sinceMs: number): string | null {
    const row = this.#sql
      .exec<{ id: string }>("SELECT id FROM tasks WHERE dedup_id = ? AND created_ms > ?", deduplicationId, sinceMs)
      .toArray()[0];
    return row ? row.id : null;
  }

  /** Frees a deduplication id whose task is older than the retention window. */
  releaseDeduplicationId(deduplicationId: string): void {
    this.#sql.exec("UPDATE tasks SET dedup_id = NULL WHERE dedup_id = ?", deduplicationId);
  }

  /** 0 → 1 (callers begin only waiting tasks): the attempt numbered `attempt` starts now and is presumed lost after `leaseMs`. */
  markDoing(id: string, attempt: number, nowMs: number, leaseMs: number, wasInFlight: boolean): void {
    this.#sql.exec(
      `UPDATE tasks SET state = 1, attempts = ?, lease_ms = ?, dispatched_ms = NULL,
         first_attempt_ms = COALESCE(first_attempt_ms, ?) WHERE id = ?`,
      attempt,
      leaseMs,
      nowMs,
      id,
    );
    this.#counted(0, 1);
    if (wasInFlight) this.#inFlightBy(-1);
  }

  /** 1 → 0 (a failed attempt), to run again at `etaMs`; the attempt's record in the same write. */
  markWaiting(id: string, etaMs: number, attempt: AttemptRecord): void {
    const record = attemptAssignments(attempt);
    this.#sql.exec(
      `UPDATE tasks SET state = 0, eta_ms = ?, lease_ms = NULL, dispatched_ms = NULL, ${record.set} WHERE id = ?`,
      etaMs,
      ...record.values,
      id,
    );
    this.#counted(1, 0);
  }

  /**
   * `from` (0 or 1) → 10 or 11, with the next result sequence number; `attempt`, when an attempt
   * ended it, is recorded in the same write (one row write, not two).
   */
  markFinished(
    id: string,
    from: TaskState,
    state: 10 | 11,
    nowMs: number,
    error?: string,
    attempt?: AttemptRecord,
  ): number {
    // A waiting task ends (canceled, expired) perhaps with a message out: it leaves the window.
    if (from === 0) this.clearDispatched([id]);
    const seq = this.nextSeq();
    const record = attempt
      ? attemptAssignments(attempt, error)
      : { set: "error = COALESCE(?, error), exec_ms = COALESCE(exec_ms, ?)", values: [error ?? null, nowMs] };
    this.#sql.exec(
      `UPDATE tasks SET state = ?, finished_ms = ?, lease_ms = NULL, dispatched_ms = NULL, seq = ?, ${record.set} WHERE id = ?`,
      state,
      nowMs,
      seq,
      ...record.values,
      id,
    );
    this.#counted(from, state);
    return seq;
  }

  /**
   * 11 → 0 with a fresh budget of `budget` attempts (the app's max_attempts; -1 unlimited) on
   * top of those already made (retry, redrive): attempt numbers only ever grow, so a stale
   * `finish` of an attempt before the retry can never match a new one. No longer a result: no seq.
   */
  resetForRetry(id: string, nowMs: number, budget: number): void {
    this.#sql.exec(
      `UPDATE tasks SET state = 0, max_attempts = CASE WHEN ?1 = -1 THEN -1 ELSE attempts + ?1 END, first_attempt_ms = NULL,
         eta_ms = ?2, dispatched_ms = NULL, finished_ms = NULL, error = NULL, retry_reason = NULL, seq = NULL WHERE id = ?3`,
      budget,
      nowMs,
      id,
    );
    this.#counted(11, 0);
  }

  /** The outbox: waiting tasks that are due and have no queue message in flight. */
  dueUnsent(nowMs: number, limit: number): string[] {
    return this.#sql
      .exec<{ id: string }>(
        "SELECT id FROM tasks INDEXED BY tasks_outbox WHERE state = 0 AND eta_ms <= ? AND dispatched_ms IS NULL ORDER BY eta_ms LIMIT ?",
        nowMs,
        limit,
      )
      .toArray()
      .map((row) => row.id);
  }

  /**
   * Messages sent before `beforeMs` whose task never began: presumed lost and sent again,
   * unless a consumer holds them (`isClaimed`), in which case they are looked at again
   * later. Answers how many are sent again; the count is kept in the app's stats.
   */
  forgetStaleDispatches(beforeMs: number, nowMs: number, isClaimed: (id: string) => boolean): number {
    const stale = this.#sql
      .exec<{ id: string }>(
        "SELECT id FROM tasks INDEXED BY tasks_in_flight WHERE state = 0 AND dispatched_ms IS NOT NULL AND dispatched_ms < ?",
        beforeMs,
      )
      .toArray();
    let resent = 0;
    for (const { id } of stale) {
      if (isClaimed(id)) {
        this.#sql.exec("UPDATE tasks SET dispatched_ms = ? WHERE id = ?", nowMs, id);
      } else {
        this.#sql.exec("UPDATE tasks SET dispatched_ms = NULL WHERE id = ?", id);
        resent++;
      }
    }
    this.#inFlightBy(-resent);
    if (resent > 0) this.#meta.set("resends", String(Number(this.#meta.get("resends") ?? "0") + resent));
    return resent;
  }

  /** Marks waiting tasks without a message as sent (others are left as they are). */
  markDispatched(ids: string[], nowMs: number): void {
    for (const id of ids) {
      const marked = this.#sql
        .exec(
          "UPDATE tasks SET dispatched_ms = ? WHERE id = ? AND state = 0 AND dispatched_ms IS NULL RETURNING id",
          nowMs,
          id,
        )
        .toArray();
      this.#inFlightBy(marked.length);
    }
  }

  clearDispatched(ids: string[]): void {
    for (const id of ids) {
      const cleared = this.#sql
        .exec("UPDATE tasks SET dispatched_ms = NULL WHERE id = ? AND dispatched_ms IS NOT NULL RETURNING state", id)
        .toArray();
      if (cleared[0]?.["state"] === 0) this.#inFlightBy(-1);
    }
  }

  /** Pausing and resuming: every waiting task's message is forgotten, to be sent afresh. */
  forgetAllDispatches(): void {
    this.#sql.exec("UPDATE tasks SET dispatched_ms = NULL WHERE state = 0 AND dispatched_ms IS NOT NULL");
    this.#inFlight = 0;
  }

  inFlight(): number {
    this.#inFlight ??= this.#sql
      .exec<{ n: number }>(
        "SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_in_flight WHERE state = 0 AND dispatched_ms IS NOT NULL",
      )
      .one().n;
    return this.#inFlight;
  }

  // ---- bulk operations (app/bulk.ts): ranges of the per-state indexes ----

  /** Up to `limit` failed tasks matching a redrive, after `cursor` in id order. */
  failedMatching(criteria: RedriveCriteria, cursor: string, limit: number): string[] {
    return this.#sql
      .exec<{ id: string }>(
        `SELECT id FROM tasks INDEXED BY tasks_failed WHERE ${FAILED_MATCHING} ORDER BY id LIMIT ?4`,
        ...failedMatchingBindings(criteria, cursor),
        limit,
      )
      .toArray()
      .map((row) => row.id);
  }

  countFailedMatching(criteria: RedriveCriteria): number {
    return this.#sql
      .exec<{ n: number }>(
        `SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_failed WHERE ${FAILED_MATCHING}`,
        ...failedMatchingBindings(criteria, ""),
      )
      .one().n;
  }

  /** Deletes up to `limit` waiting tasks created before `untilMs`, after `cursor`; answers the ids. */
  deleteWaiting(untilMs: number, cursor: string, limit: number): string[] {
    const rows = this.#sql
      .exec<{ id: string; dispatched_ms: number | null }>(
        "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_waiting WHERE state = 0 AND id > ? AND id < ? ORDER BY id LIMIT ?) RETURNING id, dispatched_ms",
        cursor,
        timePrefix(untilMs),
        limit,
      )
      .toArray();
    this.#counted(0, null, rows.length);
    this.#inFlightBy(-rows.filter((row) => row.dispatched_ms !== null).length);
    return rows.map((row) => row.id);
  }

  /** When the oldest waiting task was submitted; null when none waits. */
  oldestWaitingCreatedMs(): number | null {
    return this.#oldestCreatedMs([0]);
  }

  /**
   * When the oldest task in one of `states` was submitted: one seek on tasks_waiting; running
   * tasks (few) are read whole from tasks_running, which is ordered by lease.
   */
  #oldestCreatedMs(states: TaskState[]): number | null {
    const seeks = states
      .map((state) => `SELECT MIN(id) AS id FROM tasks INDEXED BY ${STATE_INDEX[state]} WHERE state = ${state}`)
      .join(" UNION ALL ");
    const row = this.#sql.exec<{ id: string | null }>(`SELECT MIN(id) AS id FROM (${seeks})`).one();
    return row.id === null ? null : createdMsOf(row.id);
  }

  /** Attempts running now. */
  runningCount(): number {
    return this.#sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_running WHERE state = 1")
      .one().n;
  }

  /** Up to `limit` running attempts whose lease ran out (the longest gone first): their consumer is gone. */
  expiredLeases(nowMs: number, limit: number): TaskRow[] {
    return this.#sql
      .exec<TaskRow>(
        "SELECT * FROM tasks INDEXED BY tasks_running WHERE state = 1 AND lease_ms <= ? ORDER BY lease_ms LIMIT ?",
        nowMs,
        limit,
      )
      .toArray();
  }

  /** Up to `limit` unfinished tasks created before `beforeMs`: past retention, they expire. */
  unfinishedCreatedBefore(beforeMs: number, limit: number): { id: string; state: TaskState }[] {
    // Task ids begin with their creation time: a range of tasks_waiting covers exactly the old
    // waiting ones; the running ones are few.
    return this.#sql
      .exec<{ id: string; state: TaskState }>(
        `SELECT id, state FROM (
           SELECT id, state FROM tasks INDEXED BY tasks_waiting WHERE state = 0 AND id < ?1
           UNION ALL SELECT id, state FROM tasks INDEXED BY tasks_running WHERE state = 1 AND id < ?1)
         ORDER BY id LIMIT ?2`,
        timePrefix(beforeMs),
        limit,
      )
      .toArray();
  }

  /**
   * Deletes up to `limit` tasks finished before `beforeMs`, oldest results first (by seq: the
   * order they finished in). A task whose notifications are still pending stays until they are
   * delivered or given up: the record is what they send. `more`: the pass stopped at its limit,
   * not at a result too new to go.
   */
  deleteFinishedBefore(beforeMs: number, limit: number): { deleted: number; more: boolean } {
    // Results with a notification pending are passed over (as the alarm's wake-up time passes
    // over them: see nextWakeMs), so they never hold back the ones behind them.
    const cursor = this.#sql.exec<{ id: string; finished_ms: number }>(
      `SELECT id, finished_ms FROM tasks INDEXED BY tasks_by_seq WHERE seq IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM notifications WHERE notifications.task_id = tasks.id)
       ORDER BY seq LIMIT ?`,
      limit,
    );
    // Read lazily, up to the first result too new to go: a pass with nothing to delete reads one row.
    const ids: string[] = [];
    let reachedNew = false;
    for (const row of cursor) {
      if (row.finished_ms >= beforeMs) {
        reachedNew = true;
        break;
      }
      ids.push(row.id);
    }
    let deleted = 0;
    let succeeded = 0;
    // RETURNING counts tasks (rowsWritten would count index rows too); in chunks under SQLite's bound-parameter limit.
    for (let i = 0; i < ids.length; i += 100) {
      const chunk = ids.slice(i, i + 100);
      const cursor = this.#sql.exec<{ state: TaskState }>(
        `DELETE FROM tasks WHERE id IN (${chunk.map(() => "?").join(",")}) RETURNING state`,
        ...chunk,
      );
      const rows = cursor.toArray();
      meters.retention_rows_written += cursor.rowsWritten;
      deleted += rows.length;
      succeeded += rows.filter((row) => row.state === 10).length;
    }
    meters.retention_tasks += deleted;
    this.#counted(10, null, succeeded);
    this.#counted(11, null, deleted - succeeded);
    return { deleted, more: !reachedNew && ids.length === limit };
  }

  /**
   * When the alarm must next run for task work: the earliest of the next due
   * unsent task, the re-send check of one sent before the object woke, a lease running out,
   * and the retention deadline of the oldest task. Null when there is nothing to do.
   */
  nextWakeMs(
    redispatchAfterMs: number,
    /** Only a message sent before then (this object's wake-up) may be lost: the re-send check is for those. */
    lostSentBefore: number,
    retentionMs: number,
    paused: boolean,
    /** Sending waits for attempts to begin or finish (a full queue window or concurrency). */
    sendingBlocked: boolean,
    /** Sending waits until then (a held or backed-off app): applies to sending, not to leases or retention. */
    sendNotBefore = 0,
  ): number | null {
    // Each subquery reads one partial index and stops at its first row: cheap behind any backlog.
    // (The finished one is ORDER BY … LIMIT 1, not MIN(): with the NOT EXISTS term SQLite's
    // min/max shortcut does not apply, and MIN() would scan every finished task on every call.)
    const row = this.#sql
      .exec<{ due: number | null; sent: number | null; lease: number | null; finished: number | null }>(
        `SELECT
           (SELECT MIN(eta_ms) FROM tasks INDEXED BY tasks_outbox WHERE state = 0 AND dispatched_ms IS NULL) AS due,
           (SELECT MIN(dispatched_ms) FROM tasks INDEXED BY tasks_in_flight WHERE state = 0 AND dispatched_ms IS NOT NULL) AS sent,
           (SELECT MIN(lease_ms) FROM tasks INDEXED BY tasks_running WHERE state = 1) AS lease,
           (SELECT finished_ms FROM tasks INDEXED BY tasks_by_seq WHERE seq IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM notifications WHERE notifications.task_id = tasks.id)
              ORDER BY seq LIMIT 1) AS finished`,
      )
      .one();
    const sending = (at: number | null) => (at === null ? null : Math.max(at, sendNotBefore));
    const candidates = [
      // Blocked sending refills the outbox as attempts begin or finish: no alarm for it.
      paused || sendingBlocked ? null : sending(row.due),
      paused || row.sent === null || row.sent >= lostSentBefore ? null : sending(row.sent + redispatchAfterMs),
      row.lease,
      row.finished === null ? null : row.finished + retentionMs,
    ].filter((value): value is number => value !== null);
    return candidates.length ? Math.min(...candidates) : null;
  }

  /**
   * When the oldest unfinished task reaches the end of its retention. Asked once per wake-up
   * and after each alarm whose deadline passed.
   */
  unfinishedRetentionDueMs(retentionMs: number): number | null {
    const oldest = this.#oldestCreatedMs([0, 1]);
    return oldest === null ? null : oldest + retentionMs;
  }

  /**
   * One page of the resume replay: finished tasks with a seq above `since`, in order, until
   * REPLAY_PAGE_BYTES are read (at least one row). `done` when no later result exists.
   */
  finishedSince(since: number, budgetBytes = REPLAY_PAGE_BYTES): { rows: TaskRow[]; done: boolean } {
    const rows: TaskRow[] = [];
    let bytes = 0;
    let done = true;
    // The cursor reads (and bills) rows only as they are consumed: stopping early reads no more.
    for (const row of this.#sql.exec<TaskRow>("SELECT * FROM tasks WHERE seq > ? ORDER BY seq", since)) {
      if (rows.length > 0 && bytes + rowBytes(row) > budgetBytes) {
        done = false;
        break;
      }
      rows.push(row);
      bytes += rowBytes(row);
    }
    if (bytes > this.largestReplayPage.bytes) Object.assign(this.largestReplayPage, { rows: rows.length, bytes });
    return { rows, done };
  }

  /**
   * Tasks newest first, without bodies, ids in [`from`, `below`) when given: ids begin with their
   * creation time, so a cursor and a time window are both bounds of one range scan on the primary
   * key, or on the state's own index.
   */
  list(state: TaskState | null, limit: number, below: string | null, from: string | null = null): TaskRow[] {
    const clauses: string[] = [];
    const params: string[] = [];
    // The state as a literal: a partial index serves only a query whose terms imply its own.
    if (state !== null) clauses.push(`state = ${Number(state)}`);
    if (below !== null) (clauses.push("id < ?"), params.push(below));
    if (from !== null) (clauses.push("id >= ?"), params.push(from));
    return this.#sql
      .exec<TaskRow>(
        `SELECT ${SUMMARY_COLUMNS} FROM tasks ${state === null ? "" : `INDEXED BY ${STATE_INDEX[state]}`}
         ${clauses.length ? `WHERE ${clauses.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`,
        ...params,
        limit,
      )
      .toArray();
  }

  /** Task counts by state, from the counters (four rows read, whatever the table holds). */
  counts(): Record<string, number> {
    const counts: Record<string, number> = {
      waiting: 0,
      doing: 0,
      success: 0,
      failed: 0,
      resends: Number(this.#meta.get("resends") ?? "0"),
    };
    const names: Record<number, string> = { 0: "waiting", 1: "doing", 10: "success", 11: "failed" };
    for (const row of this.#sql.exec<{ state: number; n: number }>("SELECT state, n FROM task_counts")) {
      counts[names[row.state] ?? String(row.state)] = row.n;
    }
    return counts;
  }
}
