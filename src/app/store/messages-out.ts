/**
 * The queue window, kept in memory: which waiting tasks have a queue message out (no attempt has
 * begun from it yet) and since when, and the outbox's reads of the tasks that have none. A send
 * writes no row (a row and an index entry saved per task); the ids out are written with the
 * counts' checkpoint (task-counts.ts), so after a restart the tasks out at the checkpoint are
 * taken as sent then (sent again once that counts as lost), and any other due task is sent at
 * once: a message sent in the last seconds before a crash may go twice, which the state machine
 * shrugs off. Changes inside a group commit are journaled with the running attempts'.
 */
import type { TaskState } from "../../shared/types";
import { JournaledMap } from "./journaled-map";
import type { RunningAttempts } from "./running";

/** What the last checkpoint said was out. */
export interface StoredOut {
  at: number;
  ids: string[];
}

export class MessagesOut {
  readonly #sql: SqlStorage;
  readonly #running: RunningAttempts;
  readonly #storedOut: () => StoredOut | null;
  /** When the store was opened (the object's wake-up). */
  readonly #openedAt: number;

  /** Task id → when its message was sent. Read through {@link #sent}, which first takes over the checkpoint's. */
  readonly #marks = new JournaledMap<string, number>();
  #presumed = false;

  /**
   * Every waiting task due before this (unix ms) has a message out or an attempt running: the
   * outbox reads from here, not past the whole queue window on every pass. Moved back (to 0 when
   * which is not known) by whatever leaves a task unsent.
   */
  #floor = 0;

  constructor(sql: SqlStorage, running: RunningAttempts, storedOut: () => StoredOut | null, openedAt: number) {
    this.#sql = sql;
    this.#running = running;
    this.#storedOut = storedOut;
    this.#openedAt = openedAt;
  }

  /** The marks, after a wake-up first those the last checkpoint says were out. */
  get #sent(): JournaledMap<string, number> {
    if (!this.#presumed) {
      this.#presumed = true;
      this.#presumeOut();
    }
    return this.#marks;
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

  // ---- the journal (a group commit) ----------------------------------------------------

  openBatch(): void {
    this.#marks.openBatch();
  }

  closeBatch(): void {
    this.#marks.closeBatch();
  }

  changes(): number {
    return this.#marks.changes();
  }

  /** Undoes the open batch's changes after the first `keep`; what became unsent is not known. */
  rollback(keep = 0): void {
    this.#floor = 0;
    this.#marks.rollback(keep);
  }

  // ---- changes ----------------------------------------------------------------------------

  /** A new task: its message goes with its group (`sentMs`), or the outbox sends it from `etaMs`. */
  inserted(id: string, etaMs: number, sentMs: number | null): void {
    if (sentMs !== null) this.#sent.set(id, sentMs);
    else this.#lowerFloor(etaMs);
  }

  /** Its message is done with: an attempt began from it, or the task finished or went. */
  settled(id: string): void {
    this.#sent.set(id, null);
  }

  /** A waiting task (a retry, a redriven one) is to be sent from `etaMs`. */
  due(etaMs: number): void {
    this.#lowerFloor(etaMs);
  }

  #lowerFloor(etaMs: number): void {
    if (etaMs < this.#floor) this.#floor = etaMs;
  }

  /** Marks waiting tasks (found unsent by {@link dueUnsent}) as having a queue message out since `nowMs`. */
  markDispatched(ids: string[], nowMs: number): void {
    for (const id of ids) if (!this.#sent.has(id) && !this.#running.has(id)) this.#sent.set(id, nowMs);
  }

  /** Their messages are gone (refused by the queue, dead-lettered, turned away): sent again when due. */
  clearDispatched(ids: string[]): void {
    if (ids.length > 0) this.#floor = 0;
    for (const id of ids) this.#sent.set(id, null);
  }

  /** Pausing and resuming: every waiting task's message is forgotten, to be sent afresh. */
  forgetAll(): void {
    this.#floor = 0;
    this.#sent.clear();
  }

  /**
   * Messages sent before `beforeMs`: presumed lost and forgotten (sent again), unless a consumer
   * holds them (`isClaimed`: looked at again later). Answers how many are sent again.
   */
  forgetStale(beforeMs: number, nowMs: number, isClaimed: (id: string) => boolean): number {
    const stale = [...this.#sent.entries()].filter(([, sentMs]) => sentMs < beforeMs).map(([id]) => id);
    let resent = 0;
    for (const id of stale) {
      if (isClaimed(id)) {
        this.#sent.set(id, nowMs);
      } else {
        this.#sent.set(id, null);
        resent++;
      }
    }
    if (resent > 0) this.#floor = 0;
    return resent;
  }

  /** After writes that bypassed the store (tests): the marks of tasks that no longer wait go. */
  prune(): void {
    this.#floor = 0;
    for (const id of this.#marks.keys()) if (this.#row(id)?.state !== 0) this.#marks.replace(id, null);
  }

  // ---- reads ------------------------------------------------------------------------------

  /**
   * Waiting tasks with neither a message out nor an attempt running, by when they are due, from
   * the floor (read lazily: reading stops at the last one taken).
   */
  *#unsent(sql: string, ...bindings: SqlStorageValue[]): Generator<{ id: string; eta_ms: number }> {
    for (const row of this.#sql.exec<{ id: string; eta_ms: number }>(sql, ...bindings))
      if (!this.#sent.has(row.id) && !this.#running.has(row.id)) yield row;
  }

  /** The outbox: up to `limit` waiting tasks that are due and have no queue message in flight. */
  dueUnsent(nowMs: number, limit: number): string[] {
    const ids: string[] = [];
    if (limit <= 0) return ids;
    let floor: number | null = null;
    for (const { id, eta_ms } of this.#unsent(
      "SELECT id, eta_ms FROM tasks INDEXED BY tasks_outbox WHERE state = 0 AND eta_ms >= ? AND eta_ms <= ? ORDER BY eta_ms",
      this.#floor,
      nowMs,
    )) {
      floor ??= eta_ms;
      ids.push(id);
      if (ids.length === limit) break;
    }
    // Everything before the first one found is out or running (those found are marked next).
    this.#floor = floor ?? Math.max(this.#floor, nowMs);
    return ids;
  }

  /** When the first waiting task without a message or an attempt is due; null when none waits. */
  firstUnsentEtaMs(): number | null {
    for (const row of this.#unsent(
      "SELECT id, eta_ms FROM tasks INDEXED BY tasks_outbox WHERE state = 0 AND eta_ms >= ? ORDER BY eta_ms",
      this.#floor,
    ))
      return row.eta_ms;
    return null;
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
