/**
 * The outbox's view of the waiting tasks, kept in memory: which have a queue message out (no
 * attempt has begun from it yet) and since when, and where the tasks without one are. A send
 * writes no row; neither does finding the waiting tasks, which have no index entry of their own:
 *
 * - Tasks due within PARKED_AFTER_MS of their creation ("near": almost all) are found by a scan
 *   of the primary key from a cursor: ids only grow, so tasks submitted since the last pass are
 *   the rows after it, and the cursor passes over every row it has dealt with (finished, out,
 *   running, or kept in {@link DueLater} until due). A task made unsent again moves the cursor
 *   back to it, or goes to DueLater with when it is due (a retry).
 * - Tasks due later ("parked": long delays, long backoffs) are found by their partial index
 *   (tasks_parked), by when they are due, from a floor.
 *
 * The ids out and the lowest id a near waiting task may have (the cursor, or an id it passed that
 * was not done) are written with the counts' checkpoint (task-counts.ts). After a restart the
 * scan starts there; the tasks out at the checkpoint are taken as sent then (sent again once
 * that counts as lost), and any other due task is sent at once: a message sent in the last
 * seconds before a crash may go twice, which the state machine shrugs off. Changes inside a
 * group commit are journaled with the running attempts'; a rollback moves the cursor back.
 */
import type { TaskState } from "../../shared/types";
import { DueLater } from "./due-later";
import { JournaledMap } from "./journaled-map";
import type { RunningAttempts } from "./running";
import { PARKED, PARKED_AFTER_MS, inChunks } from "./sql";

/** What the last checkpoint said was out, and where the scan of near waiting tasks starts. */
export interface StoredOut {
  at: number;
  ids: string[];
  /** No near waiting task has an id below this ("" or absent: from the first row). */
  from?: string;
}

/** How many not-yet-due tasks the outbox keeps in memory (~150 bytes each). */
export const DUE_LATER_CAPACITY = 50_000;
/** With DueLater full, how many rows one pass reads past a task not due yet, looking for due ones. */
const SCAN_PAST_BLOCKED = 1_000;

/** The least string above `id` and below every greater id (ids are fixed-length hex). */
const above = (id: string) => `${id}~`;
const minOf = (a: string, b: string | null | undefined) => (b != null && b < a ? b : a);

export class MessagesOut {
  readonly #sql: SqlStorage;
  readonly #running: RunningAttempts;
  readonly #storedOut: () => StoredOut | null;
  /** When the store was opened (the object's wake-up). */
  readonly #openedAt: number;

  /** Task id → when its message was sent. Read through {@link #sent}, which first takes over the checkpoint's. */
  readonly #marks = new JournaledMap<string, number>();
  #presumed = false;

  /** Waiting tasks without a message that are due later (or again), passed over by the scan. */
  readonly #later: DueLater;

  /** Every near waiting task with an id below this is out, running or in {@link #later}; null: read from the checkpoint. */
  #cursor: string | null = null;

  /** The lowest id the open batch changed (a rollback moves the cursor back to it); null: none, or no batch. */
  #batchLow: string | null = null;
  #batchOpen = false;

  /**
   * Every parked task due before this (unix ms) has a message out or an attempt running: the
   * parked index is read from here. Moved back (to 0 when which is not known) by whatever leaves
   * a task unsent.
   */
  #floor = 0;

  constructor(
    sql: SqlStorage,
    running: RunningAttempts,
    storedOut: () => StoredOut | null,
    openedAt: number,
    laterCapacity = DUE_LATER_CAPACITY,
  ) {
    this.#sql = sql;
    this.#running = running;
    this.#storedOut = storedOut;
    this.#openedAt = openedAt;
    this.#later = new DueLater(laterCapacity);
  }

  /** The marks, after a wake-up first those the last checkpoint says were out. */
  get #sent(): JournaledMap<string, number> {
    if (!this.#presumed) {
      this.#presumed = true;
      this.#presumeOut();
    }
    return this.#marks;
  }

  /** Where the scan of near waiting tasks goes on from (after a wake-up, the checkpoint's bound). */
  get #from(): string {
    this.#cursor ??= this.#storedOut()?.from ?? "";
    return this.#cursor;
  }

  /**
   * The tasks that had a message out or an attempt running at the last checkpoint, and still
   * wait and were due then, are taken as sent at the checkpoint (not in a rollback's journal):
   * not sent again at once, but once that counts as lost (30 s after it, unless an attempt
   * begins or its finish is adopted).
   */
  #presumeOut(): void {
    const out = this.#storedOut();
    if (!out) return;
    const at = Math.min(out.at, this.#openedAt - 1);
    for (const id of out.ids) {
      const row = this.#row(id);
      if (row?.state === 0 && row.eta_ms <= out.at && !this.#running.has(id)) this.#marks.replace(id, at);
    }
  }

  #row(id: string): { state: TaskState; eta_ms: number } | undefined {
    return this.#sql
      .exec<{ state: TaskState; eta_ms: number }>("SELECT state, eta_ms FROM tasks WHERE id = ?", id)
      .toArray()[0];
  }

  /**
   * The lowest id a near waiting task may have: the cursor, or a task passed over that is not
   * done (out, running, due later). Written with each checkpoint; listings, purge and expiry read
   * the waiting tasks from here (and the parked ones by their index).
   */
  waitingFrom(): string {
    return this.#lowest(this.#from, this.#sent);
  }

  /** The least of `from` and the ids kept in memory that the scan has passed over. */
  #lowest(from: string, marks: JournaledMap<string, number>): string {
    let lowest = minOf(from, this.#later.minId());
    for (const id of marks.keys()) lowest = minOf(lowest, id);
    for (const id of this.#running.keys()) lowest = minOf(lowest, id);
    return lowest;
  }

  /** The scan goes back to `id` (a task made unsent again, or changed in a batch that may roll back). */
  #rescanFrom(id: string): void {
    this.#cursor = minOf(this.#from, id);
  }

  #touched(id: string): void {
    if (this.#batchOpen) this.#batchLow = minOf(this.#batchLow ?? id, id);
  }

  // ---- the journal (a group commit) ----------------------------------------------------

  openBatch(): void {
    this.#marks.openBatch();
    this.#batchOpen = true;
    this.#batchLow = null;
  }

  closeBatch(): void {
    this.#marks.closeBatch();
    this.#batchOpen = false;
    this.#batchLow = null;
  }

  changes(): number {
    return this.#marks.changes();
  }

  /**
   * Undoes the open batch's changes after the first `keep` (called before the running attempts'
   * rollback): which tasks became unsent is not known, so the scan starts again from the lowest
   * id that may be one, and the parked index from its start. What {@link #later} keeps stays (an
   * entry of a task that no longer waits unsent is passed over when taken).
   */
  rollback(keep = 0): void {
    // Not read from the table when not read yet (an object that is no app has none): the
    // checkpoint's bound then covers what the batch touched (a redrive writes it in the batch).
    const from = this.#cursor === null ? null : minOf(this.#lowest(this.#cursor, this.#marks), this.#batchLow);
    this.#marks.rollback(keep);
    if (from !== null) this.#cursor = from;
    this.#floor = 0;
  }

  // ---- changes ----------------------------------------------------------------------------

  /** A new task: its message goes with its group (`sentMs`), or the outbox finds it (its id is above the cursor). */
  inserted(id: string, etaMs: number, sentMs: number | null): void {
    this.#touched(id);
    if (sentMs !== null) this.#sent.set(id, sentMs);
    else this.#lowerFloor(etaMs);
  }

  /** Its message is done with: an attempt began from it, or the task finished or went. */
  settled(id: string): void {
    this.#touched(id);
    this.#sent.set(id, null);
    this.#later.delete(id);
  }

  /** A waiting task (a retry, a redriven one) is to be sent from `etaMs`. */
  due(id: string, etaMs: number): void {
    this.#touched(id);
    this.#lowerFloor(etaMs);
    if (!this.#later.add(id, etaMs)) this.#rescanFrom(id);
  }

  #lowerFloor(etaMs: number): void {
    if (etaMs < this.#floor) this.#floor = etaMs;
  }

  /** Marks waiting tasks (found unsent by {@link dueUnsent}) as having a queue message out since `nowMs`. */
  markDispatched(ids: string[], nowMs: number): void {
    for (const id of ids) {
      this.#touched(id);
      this.#later.delete(id);
      if (!this.#sent.has(id) && !this.#running.has(id)) this.#sent.set(id, nowMs);
    }
  }

  /** Tasks made unsent: the scan goes back to the lowest, the parked index to its start. */
  #unsent(ids: string[]): void {
    if (ids.length === 0) return;
    for (const id of ids) this.#rescanFrom(id);
    this.#floor = 0;
  }

  /** Their messages are gone (refused by the queue, dead-lettered, turned away): sent again when due. */
  clearDispatched(ids: string[]): void {
    for (const id of ids) {
      this.#touched(id);
      this.#sent.set(id, null);
    }
    this.#unsent(ids);
  }

  /** Pausing and resuming: every waiting task's message is forgotten, to be sent afresh. */
  forgetAll(): void {
    this.#unsent(this.#sent.keys());
    this.#sent.clear();
  }

  /**
   * Messages sent before `beforeMs`: presumed lost and forgotten (sent again), unless a consumer
   * holds them (`isClaimed`: looked at again later). Answers how many are sent again.
   */
  forgetStale(beforeMs: number, nowMs: number, isClaimed: (id: string) => boolean): number {
    const stale = [...this.#sent.entries()].filter(([, sentMs]) => sentMs < beforeMs).map(([id]) => id);
    const lost: string[] = [];
    for (const id of stale) {
      if (isClaimed(id)) {
        this.#sent.set(id, nowMs);
      } else {
        this.#sent.set(id, null);
        lost.push(id);
      }
    }
    this.#unsent(lost);
    return lost.length;
  }

  /** After writes that bypassed the store (tests): the marks of tasks that no longer wait go, the scan starts again. */
  prune(): void {
    // Not read from the table when not read yet (an object that is no app has none).
    if (this.#cursor !== null) this.#cursor = this.#lowest(this.#cursor, this.#marks);
    this.#later.clear();
    this.#floor = 0;
    for (const id of this.#marks.keys()) if (this.#row(id)?.state !== 0) this.#marks.replace(id, null);
  }

  // ---- reads ------------------------------------------------------------------------------

  #unsentTask(id: string): boolean {
    return !this.#sent.has(id) && !this.#running.has(id);
  }

  /**
   * Parked tasks with neither a message out nor an attempt running, by when they are due, from
   * the floor (read lazily: reading stops at the last one taken).
   */
  *#parkedUnsent(toMs: number | null, chosen: Set<string>): Generator<{ id: string; eta_ms: number }> {
    const floor = this.#floor;
    const to = toMs ?? Number.MAX_SAFE_INTEGER;
    // In (eta, id) order, the index's own (a WITHOUT ROWID table's index ends with the key).
    const rows = inChunks<{ id: string; eta_ms: number }>(
      (after, size) =>
        this.#sql
          .exec<{ id: string; eta_ms: number }>(
            `SELECT id, eta_ms FROM tasks INDEXED BY tasks_parked WHERE ${PARKED} AND eta_ms >= ?1 AND eta_ms <= ?3
             AND (eta_ms > ?1 OR id > ?2) ORDER BY eta_ms, id LIMIT ?4`,
            after?.eta_ms ?? floor,
            after?.id ?? "",
            to,
            size,
          )
          .toArray(),
      64,
    );
    for (const row of rows) if (this.#unsentTask(row.id) && !this.#later.has(row.id) && !chosen.has(row.id)) yield row;
  }

  /**
   * The scan of near tasks from the cursor, in id order: rows dealt with are passed over (the
   * cursor moves past them while nothing before them is left behind), tasks not due yet go to
   * {@link #later}. Answers the unsent tasks that are due, up to `limit` (taken: the cursor moves
   * past them, the caller marks them sent, as it does those `chosen` before), and the first one's due time. With {@link #later}
   * full, a task not due holds the cursor and the pass reads SCAN_PAST_BLOCKED rows beyond it.
   */
  #scanNear(
    nowMs: number,
    limit: number,
    take: boolean,
    chosen: Set<string>,
  ): { due: string[]; firstEtaMs: number | null } {
    const due: string[] = [];
    let firstEtaMs: number | null = null;
    let held = false;
    let pastHold = 0;
    type Row = { id: string; state: TaskState; eta_ms: number; created_ms: number };
    const from = this.#from;
    const rows = inChunks<Row>(
      (after, size) =>
        this.#sql
          .exec<Row>(
            `SELECT id, state, eta_ms, created_ms FROM tasks WHERE id ${after ? ">" : ">="} ? ORDER BY id LIMIT ?`,
            after?.id ?? from,
            size,
          )
          .toArray(),
      Math.min(256, Math.max(16, limit)),
    );
    for (const row of rows) {
      if (held && ++pastHold > SCAN_PAST_BLOCKED) break;
      let passed =
        row.state !== 0 ||
        row.eta_ms > row.created_ms + PARKED_AFTER_MS ||
        this.#later.has(row.id) ||
        chosen.has(row.id) ||
        !this.#unsentTask(row.id);
      if (!passed && row.eta_ms > nowMs) passed = this.#later.add(row.id, row.eta_ms);
      if (passed) {
        if (!held) this.#cursor = above(row.id);
        continue;
      }
      firstEtaMs = Math.min(firstEtaMs ?? row.eta_ms, row.eta_ms);
      if (row.eta_ms > nowMs) {
        held = true; // due later, and no room to keep it: the cursor stays before it
        continue;
      }
      if (!take) break;
      due.push(row.id);
      if (!held) this.#cursor = above(row.id);
      if (due.length === limit) break;
    }
    return { due, firstEtaMs };
  }

  /** The outbox: up to `limit` waiting tasks that are due and have no queue message in flight. */
  dueUnsent(nowMs: number, limit: number): string[] {
    if (limit <= 0) return [];
    // Retries and tasks kept until due, then parked ones, then the newest.
    const chosen = new Set(this.#later.takeDue(nowMs, limit).filter((id) => this.#unsentTask(id)));
    let floor: number | null = null;
    if (chosen.size < limit) {
      for (const { id, eta_ms } of this.#parkedUnsent(nowMs, chosen)) {
        floor ??= eta_ms;
        chosen.add(id);
        if (chosen.size === limit) break;
      }
      // Every parked task before the first one found is out or running (those found are marked next).
      this.#floor = floor ?? Math.max(this.#floor, nowMs);
    }
    const ids = [...chosen];
    if (ids.length < limit) ids.push(...this.#scanNear(nowMs, limit - ids.length, true, chosen).due);
    return ids;
  }

  /** When the first waiting task without a message or an attempt is due; null when none waits. */
  firstUnsentEtaMs(nowMs = Date.now()): number | null {
    let first = this.#later.firstDueMs();
    const none = new Set<string>();
    for (const row of this.#parkedUnsent(null, none)) {
      first = Math.min(first ?? row.eta_ms, row.eta_ms);
      break;
    }
    const near = this.#scanNear(nowMs, 1, false, none).firstEtaMs;
    if (near !== null) first = Math.min(first ?? near, near);
    return first;
  }

  /** When the oldest message out was sent; null when none is out. */
  oldestSentMs(): number | null {
    let oldest: number | null = null;
    for (const sentMs of this.#sent.values()) if (oldest === null || sentMs < oldest) oldest = sentMs;
    return oldest;
  }

  /** When the queue message of waiting task `id` was sent; null when none is out. */
  sentAt(id: string): number | null {
    return this.#sent.get(id) ?? null;
  }

  /** Task messages out that no attempt has begun from (the queue window). */
  get size(): number {
    return this.#sent.size;
  }

  /** The tasks with a message out (for the checkpoint). */
  ids(): string[] {
    return this.#sent.keys();
  }
}
