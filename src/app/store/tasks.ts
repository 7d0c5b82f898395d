/**
 * The app's tasks table: its writes (each keeping the state counters and the in-flight count
 * in step) and the queries the object runs. Every method is synchronous: writes with no `await`
 * between them commit together (one implicit transaction), and the object's input gate keeps
 * other events out while they run.
 *
 * Running attempts live in memory, not in the rows: a `begin` writes nothing (a row and an index
 * entry saved per task). A running task's row stays waiting (state 0) with the attempts made
 * before this one; reads overlay the attempt (state 1, its number, its lease). The attempt's end
 * is one write. So do the marks of queue messages sent: a send writes nothing (a row and an index
 * entry saved per task). After a restart the object has forgotten what ran and what was sent: it
 * sends every due waiting task again (a duplicate message finds its task running or finished and
 * is dropped), and a finish of the attempt after the row's last (`attempts + 1`) is taken as that
 * attempt's (see {@link TaskStore.adopt}), so an attempt running across a restart may run twice
 * (README, "Departures").
 */
import { createdMsOf, timePrefix, type ShardRoute } from "../../shared/task-id";
import type { TaskState } from "../../shared/types";
import type { MetaStore } from "./meta";
import type { AttemptRecord, NewTask, TaskRow } from "./rows";
import { MessagesOut } from "./messages-out";
import { Partitions } from "./partitions";
import { ResultsRetention } from "./results-retention";
import type { ResultsLog } from "./results-log";
import { RunningAttempts } from "./running";
import { RESTARTED, attemptAssignments, blob, waitingRows } from "./sql";
import { TaskCounts } from "./task-counts";

export class TaskStore {
  readonly #sql: SqlStorage;

  /** Counts by state, the latest seq and the newest id: in memory, checkpointed by time (task-counts.ts). */
  readonly #counts: TaskCounts;

  /** When this store was opened (the object's wake-up): a task created before may have had an attempt it never saw. */
  readonly #openedAt = Date.now();

  /** Attempts running now (in memory: running.ts); task-reads.ts overlays them too. */
  readonly #running = new RunningAttempts();

  /** Tasks given back (PutBack) since an attempt of theirs last ended, and how many times (not journaled). */
  readonly #givenBack = new Map<string, number>();

  /** Which waiting tasks have a queue message out (in memory: messages-out.ts), and the outbox's reads. */
  readonly #out: MessagesOut;

  /** Results leave a partition at a time (results-retention.ts). */
  readonly #retention: ResultsRetention;

  /** Sealed tables of results (partitions.ts): retention drops them whole. */
  readonly partitions: Partitions;

  /** The running attempts, for the store's read side (task-reads.ts). */
  get running(): RunningAttempts {
    return this.#running;
  }

  constructor(sql: SqlStorage, meta: MetaStore) {
    this.#sql = sql;
    this.partitions = new Partitions(sql, meta);
    this.#counts = new TaskCounts(sql, meta, () => ({
      ids: [...this.#out.ids(), ...this.#running.keys()],
      from: this.#out.waitingFrom(),
    }));
    this.#out = new MessagesOut(sql, this.#running, () => this.#counts.storedOut(), this.#openedAt);
    this.#retention = new ResultsRetention(sql, this.partitions, this.#counts, (from, to, n) =>
      this.#counted(from, to, n),
    );
  }

  /** `n` tasks moved from row state `from` to `to` (null: inserted / deleted). */
  #counted(from: TaskState | null, to: TaskState | null, n = 1): void {
    this.#counts.moved(from, to, n);
  }

  /** A batch (a group commit's transaction) opens: what it changes in memory can be undone. */
  openCountBatch(): void {
    this.#counts.openBatch();
    this.#running.openBatch();
    this.#out.openBatch();
  }

  /**
   * The batch's last writes, inside its transaction: the counts' checkpoint when one is due. What
   * it changed in memory can still be undone until {@link commitCountBatch} (the commit may fail).
   */
  closeCountBatch(nowMs = Date.now()): void {
    this.#counts.closeBatch(nowMs);
  }

  /** The batch's transaction committed: what it changed in memory stands. */
  commitCountBatch(): void {
    this.#running.closeBatch();
    this.#out.closeBatch();
    this.#counts.commitBatch();
  }

  /** The transaction rolled back: its gathered count changes never happened. */
  discardCountBatch(): void {
    this.#counts.discardBatch();
    // The marks first: they move the outbox's scan back below the attempts the batch began.
    this.#out.rollback();
    this.#out.closeBatch();
    this.#running.rollback();
    this.#running.closeBatch();
  }

  /**
   * Reads again what it keeps in memory (after a write to the tables that bypassed the store);
   * the marks of tasks that no longer wait go.
   */
  forgetCaches(): void {
    this.#counts.forget();
    this.partitions.forget();
    this.#retention.forget();
    this.#out.prune();
  }

  /** Writes the counts' checkpoint when one is due (the alarm), or at once with `now` (tests). */
  checkpoint(nowMs: number, now = false): void {
    this.#counts.checkpoint(nowMs, now);
  }

  /** A new task's id: time-ordered, above every id handed out before. */
  nextId(appNumber: number, nowMs: number, route: ShardRoute | null = null, maxMs = Infinity): string {
    return this.#counts.nextId(appNumber, nowMs, route, maxMs);
  }

  /**
   * The SET terms that end the running attempt of `id` (if any runs) in the write that records
   * it: its number and first start, written only now. Takes it out of the running ones.
   */
  #endRunning(id: string): { set: string; values: SqlStorageValue[] } {
    const running = this.#running.get(id);
    this.#givenBack.delete(id);
    if (!running) return { set: "", values: [] };
    this.#running.set(id, null);
    return {
      set: ", attempts = ?, first_attempt_ms = COALESCE(first_attempt_ms, ?)",
      values: [running.attempt, running.startedMs],
    };
  }

  /** A savepoint of what is kept in memory; calling the answer restores it (the savepoint rolled back). */
  countCheckpoint(): () => void {
    // Seqs an undone operation took are handed out again: it never announced them.
    const undoCounts = this.#counts.mark();
    const running = this.#running.changes();
    const sent = this.#out.changes();
    return () => {
      undoCounts();
      this.#out.rollback(sent);
      this.#running.rollback(running);
    };
  }

  /** The latest result sequence number handed out (0 before the first result). */
  /**
   * Numbers a result of a task another object holds (a shard's, as `<id>:<its seq there>`) in
   * this app's sequence: its log entry is written with this batch (the table cannot tell it).
   */
  numberResult(ref: string): number {
    return this.#counts.nextSeq(ref, true);
  }

  currentSeq(): number {
    return this.#counts.currentSeq();
  }

  /** The results in seq order: the feed's replay reads them (task-reads.ts). */
  get results(): ResultsLog {
    return this.#counts.log;
  }

  /** Seqs continue from `seq` (a re-created app never hands out seqs below its predecessor's). */
  setSeq(seq: number): void {
    this.#counts.setSeq(seq);
  }

  insert(task: NewTask): void {
    this.#counts.ensure();
    const { request } = task;
    this.#sql.exec(
      `INSERT INTO tasks (id, req_id, method, path, raw_query, header, body, created_ms, state, eta_ms,
         dedup_id, max_attempts, timeout, callback, fail_fast)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)`,
      task.id,
      task.reqId,
      request.method,
      request.path,
      request.raw_query,
      JSON.stringify(request.header),
      blob(request.body),
      task.createdMs,
      task.etaMs,
      task.deduplicationId,
      task.maxAttempts,
      task.timeout,
      task.callback,
      task.failFast ? 1 : null,
    );
    this.#counts.inserted(task.id);
    this.#counted(null, 0);
    this.#out.inserted(task.id, task.etaMs, task.dispatchedMs);
  }

  /** Task `id` (from the live table, or the partition holding its result). */
  get(id: string): TaskRow | null {
    const row =
      this.#sql.exec<TaskRow>("SELECT * FROM tasks WHERE id = ?", id).toArray()[0] ?? this.partitions.find<TaskRow>(id);
    return row ? this.#running.overlay(row) : null;
  }

  /** A task's state alone (no row but its state column read); null when there is no such task. */
  stateOf(id: string): TaskState | null {
    const row =
      this.#sql.exec<{ state: TaskState }>("SELECT state FROM tasks WHERE id = ?", id).toArray()[0] ??
      this.partitions.find<{ state: TaskState }>(id, "state");
    if (!row) return null;
    return row.state === 0 && this.#running.has(id) ? 1 : row.state;
  }

  /** A task with this deduplication id created after `sinceMs`, if any. */
  findDuplicate(deduplicationId: string, sinceMs: number): string | null {
    const row = this.#sql
      .exec<{ id: string }>("SELECT id FROM tasks WHERE dedup_id = ? AND created_ms > ?", deduplicationId, sinceMs)
      .toArray()[0];
    return row ? row.id : this.partitions.findDuplicate(deduplicationId, sinceMs);
  }

  /** Frees a deduplication id whose task is older than the retention window. */
  releaseDeduplicationId(deduplicationId: string): void {
    this.#sql.exec("UPDATE tasks SET dedup_id = NULL WHERE dedup_id = ?", deduplicationId);
    this.partitions.releaseDeduplicationId(deduplicationId);
  }

  /**
   * 0 → 1 (callers begin only waiting tasks): the attempt numbered `attempt` starts now and is
   * presumed lost after `leaseMs`. Writes nothing: running attempts are kept in memory.
   */
  markDoing(id: string, attempt: number, nowMs: number, leaseMs: number, run?: string): void {
    // Its message leaves the queue window; while it runs the outbox passes it over.
    this.#out.settled(id);
    this.#running.set(id, { attempt, leaseMs, startedMs: nowMs, ...(run === undefined ? {} : { run }) });
  }

  /** Whether the attempt running for `id` was begun by the consumer's `run` (see PutBack). */
  runs(id: string, run: string): boolean {
    return this.#running.get(id)?.run === run;
  }

  /** How many times `id` was given back since an attempt of it last ended (a restart forgets). */
  timesGivenBack(id: string): number {
    return this.#givenBack.get(id) ?? 0;
  }

  /**
   * 1 → 0 without the attempt counting: the running attempt is given back (see PutBack), so its
   * number is handed out again. The consumer retries its message: the task counts as having one
   * out since `nowMs`. Writes nothing (the begin wrote nothing either).
   */
  putBack(id: string, nowMs: number): void {
    this.#running.set(id, null);
    this.#givenBack.set(id, this.timesGivenBack(id) + 1);
    this.#out.markDispatched([id], nowMs);
  }

  /**
   * A finish of attempt `attempt` of a waiting task that this object never saw begin: begun
   * before a restart (the attempt after the row's last, of a task created before this object
   * woke). Taken as running from now, so the finish applies once; any other attempt number is stale.
   */
  adopt(id: string, attempt: number, nowMs: number, leaseMs: number): boolean {
    const row = this.#sql
      .exec<{ state: TaskState; attempts: number; created_ms: number }>(
        "SELECT state, attempts, created_ms FROM tasks WHERE id = ?",
        id,
      )
      .toArray()[0];
    if (!row || row.state !== 0 || this.#running.has(id)) return false;
    if (row.attempts + 1 !== attempt || row.created_ms >= this.#openedAt) return false;
    this.markDoing(id, attempt, nowMs, leaseMs); // its message sent again since, if any, is dropped
    return true;
  }

  /** Moves a running attempt's lease (tests end one early); false when the task does not run. */
  setLease(id: string, leaseMs: number): boolean {
    return this.#running.setLease(id, leaseMs);
  }

  /** 1 → 0 (a failed attempt), to run again at `etaMs`; the attempt's record in the same write. */
  markWaiting(id: string, etaMs: number, attempt: AttemptRecord): void {
    this.#out.due(id, etaMs);
    const record = attemptAssignments(attempt);
    const ended = this.#endRunning(id);
    this.#sql.exec(
      `UPDATE tasks SET eta_ms = ?, ${record.set}${ended.set} WHERE id = ? AND state = 0`,
      etaMs,
      ...record.values,
      ...ended.values,
      id,
    );
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
    this.#counts.ensure();
    // A waiting task ends (canceled, expired) perhaps with a message out: it leaves the window.
    if (from === 0) this.#out.settled(id);
    const seq = this.#counts.nextSeq(id);
    const record = attempt
      ? attemptAssignments(attempt, error)
      : { set: "error = COALESCE(?, error), exec_ms = COALESCE(exec_ms, ?)", values: [error ?? null, nowMs] };
    const ended = this.#endRunning(id);
    this.#sql.exec(
      `UPDATE tasks SET state = ?, finished_ms = ?, seq = ?, ${record.set}${ended.set} WHERE id = ?`,
      state,
      nowMs,
      seq,
      ...record.values,
      ...ended.values,
      id,
    );
    // A running task's row was waiting all along (state 1 lives in memory).
    this.#counted(0, state);
    this.#retention.resultAdded();
    return seq;
  }

  /**
   * 11 → 0 with a fresh budget of `budget` attempts (the app's max_attempts; -1 unlimited) on
   * top of those already made (retry, redrive): attempt numbers only ever grow, so a stale
   * `finish` of an attempt before the retry can never match a new one. No longer a result: no seq.
   */
  resetForRetry(id: string, nowMs: number, budget: number): void {
    this.#counts.ensure();
    // A result in a sealed partition comes back to the live table, where unfinished tasks are.
    if (this.#sql.exec("SELECT 1 FROM tasks WHERE id = ?", id).toArray().length === 0) this.partitions.takeBack(id);
    // Before the count (which writes the checkpoint at once): the checkpoint's bound covers it.
    this.#out.due(id, nowMs);
    this.#sql.exec(
      `UPDATE tasks SET state = 0, max_attempts = CASE WHEN ?1 = -1 THEN -1 ELSE attempts + ?1 END, first_attempt_ms = NULL,
         eta_ms = ?2, restarted_ms = ?2, finished_ms = NULL, error = NULL, retry_reason = NULL, seq = NULL WHERE id = ?3`,
      budget,
      nowMs,
      id,
    );
    this.#counted(11, 0);
  }

  /** The outbox: up to `limit` waiting tasks that are due and have no queue message in flight. */
  dueUnsent(nowMs: number, limit: number): string[] {
    return this.#out.dueUnsent(nowMs, limit);
  }

  /**
   * Messages sent before `beforeMs` whose task never began: presumed lost and sent again,
   * unless a consumer holds them (`isClaimed`), in which case they are looked at again
   * later. Answers how many are sent again; the count is kept in the app's stats.
   */
  forgetStaleDispatches(beforeMs: number, nowMs: number, isClaimed: (id: string) => boolean): number {
    const resent = this.#out.forgetStale(beforeMs, nowMs, isClaimed);
    this.#counts.resent(resent);
    return resent;
  }

  /** Marks waiting tasks (found unsent by {@link dueUnsent}) as having a queue message out since `nowMs`. */
  markDispatched(ids: string[], nowMs: number): void {
    this.#out.markDispatched(ids, nowMs);
  }

  /** Their messages are gone (refused by the queue, dead-lettered, turned away): sent again when due. */
  clearDispatched(ids: string[]): void {
    this.#out.clearDispatched(ids);
  }

  /** Pausing and resuming: every waiting task's message is forgotten, to be sent afresh. */
  forgetAllDispatches(): void {
    this.#out.forgetAll();
  }

  /** When the queue message of waiting task `id` was sent; null when none is out. */
  sentAt(id: string): number | null {
    return this.#out.sentAt(id);
  }

  /** Task messages out that no attempt has begun from (the queue window). */
  inFlight(): number {
    return this.#out.size;
  }

  // ---- bulk operations (app/bulk.ts): ranges of the per-state indexes ----

  /**
   * Deletes up to `limit` waiting tasks created before `untilMs`, after `cursor` (running ones are
   * passed over); answers the ids looked at, the deleted ones and the cursor for the next batch.
   */
  deleteWaiting(untilMs: number, cursor: string, limit: number): { deleted: string[]; cursor: string | null } {
    this.#counts.ensure();
    const candidates = this.#sql
      .exec<{ id: string }>(
        `${waitingRows("id", "AND id > ?2 AND id < ?3")} ORDER BY id LIMIT ?4`,
        this.waitingFrom(),
        cursor,
        timePrefix(untilMs),
        limit,
      )
      .toArray()
      .map((row) => row.id);
    const deleted: string[] = [];
    for (const id of candidates) {
      if (this.#running.has(id)) continue;
      if (this.#sql.exec("DELETE FROM tasks WHERE id = ? RETURNING id", id).toArray().length === 0) continue;
      deleted.push(id);
      this.#out.settled(id);
      this.#givenBack.delete(id);
    }
    this.#counted(0, null, deleted.length);
    return { deleted, cursor: candidates.length === limit ? candidates[candidates.length - 1]! : null };
  }

  /** The lowest id a near waiting task may have (see MessagesOut.waitingFrom); parked ones are indexed. */
  waitingFrom(): string {
    return this.#out.waitingFrom();
  }

  /**
   * When the retention of the oldest unfinished task (waiting or running: both rows wait)
   * started: its creation, or its latest restart (a retry or redrive of a failed task).
   */
  #oldestRetentionStartMs(): number | null {
    // Never restarted: the oldest by id. Restarted (retried or redriven): by tasks_restarted.
    const row = this.#sql
      .exec<{ id: string }>(`${waitingRows("id", "AND restarted_ms IS NULL")} ORDER BY id LIMIT 1`, this.waitingFrom())
      .toArray()[0];
    const { restarted } = this.#sql
      .exec<{ restarted: number | null }>(
        `SELECT MIN(restarted_ms) AS restarted FROM tasks INDEXED BY tasks_restarted WHERE ${RESTARTED}`,
      )
      .one();
    const starts = [row ? createdMsOf(row.id) : null, restarted].filter((at): at is number => at !== null);
    return starts.length ? Math.min(...starts) : null;
  }

  /** Attempts running now. */
  runningCount(): number {
    return this.#running.size;
  }

  /** Up to `limit` running attempts whose lease ran out (the longest gone first): their consumer is gone. */
  expiredLeases(nowMs: number, limit: number): TaskRow[] {
    const rows: TaskRow[] = [];
    for (const id of this.#running.expired(nowMs, limit)) {
      const row = this.get(id);
      if (row) rows.push(row);
      else this.#running.forget(id); // deleted under it: nothing to end
    }
    return rows;
  }

  /**
   * Up to `limit` unfinished tasks whose retention started before `beforeMs` (created then and
   * never restarted, or restarted then): past retention, they expire.
   */
  unfinishedStartedBefore(beforeMs: number, limit: number): { id: string; state: TaskState }[] {
    // Task ids begin with their creation time: a range of the waiting ones covers the old
    // unfinished ones (a running task's row waits too); restarted ones are indexed by when.
    return this.#sql
      .exec<{ id: string }>(
        `SELECT id FROM (${waitingRows("id", "AND id < ?2 AND restarted_ms IS NULL")}
           UNION ALL SELECT id FROM tasks INDEXED BY tasks_restarted WHERE ${RESTARTED} AND restarted_ms < ?3)
         ORDER BY id LIMIT ?4`,
        this.waitingFrom(),
        timePrefix(beforeMs),
        beforeMs,
        limit,
      )
      .toArray()
      .map(({ id }) => ({ id, state: this.#running.has(id) ? 1 : 0 }));
  }

  /** Retention's pass (results-retention.ts): seals the live table, drops partitions past retention. */
  retire(nowMs: number, retentionMs: number): { deleted: number } {
    this.#counts.ensure();
    return this.#retention.retire(nowMs, retentionMs);
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
    const retention = this.#retention.dueMs(Date.now(), retentionMs);
    // Blocked sending refills the outbox as attempts begin or finish: no alarm for it.
    const due = paused || sendingBlocked ? null : this.#out.firstUnsentEtaMs();
    const sent = this.#out.oldestSentMs();
    const sending = (at: number | null) => (at === null ? null : Math.max(at, sendNotBefore));
    const candidates = [
      sending(due),
      paused || sent === null || sent >= lostSentBefore ? null : sending(sent + redispatchAfterMs),
      this.#running.firstLeaseEnd(),
      retention,
    ].filter((value): value is number => value !== null);
    return candidates.length ? Math.min(...candidates) : null;
  }

  /**
   * When the oldest unfinished task reaches the end of its retention. Asked once per wake-up
   * and after each alarm whose deadline passed.
   */
  unfinishedRetentionDueMs(retentionMs: number): number | null {
    const oldest = this.#oldestRetentionStartMs();
    return oldest === null ? null : oldest + retentionMs;
  }

  /** Task counts by state, from the counters (four rows read, whatever the table holds). */
  counts(): Record<string, number> {
    const { counts, resends } = this.#counts.snapshot();
    // Running tasks' rows wait: the counts hold them as waiting.
    return {
      waiting: Math.max(0, counts[0] - this.#running.size),
      doing: this.#running.size,
      success: counts[10],
      failed: counts[11],
      resends,
    };
  }
}
