/**
 * Retention of results, a partition at a time (partitions.ts): the live table is sealed once its
 * oldest result is older than the partition period, and a partition is dropped once every result
 * in it is past retention and none has a notification pending. No row is deleted one by one.
 */
import { meters } from "../../shared/meters";
import type { TaskState } from "../../shared/types";
import { type Partitions, partitionPeriodMs } from "./partitions";
import type { TaskCounts } from "./task-counts";

/** How long the oldest result's finishing time is trusted, and a partition with a notification pending waits, before either is looked at again. */
const RECHECK_MS = 60_000;

export class ResultsRetention {
  readonly #sql: SqlStorage;
  readonly #partitions: Partitions;
  readonly #counts: TaskCounts;
  /** `n` tasks left row state `from` (the store's counters). */
  readonly #counted: (from: TaskState | null, to: TaskState | null, n: number) => void;

  /**
   * When the oldest result in the live table finished (null: none), and when that was looked up.
   * Kept until a seal or a first result: newer results only come after it, and one that left
   * since (retried) makes the answer early, never late. Looked up again after a minute anyway.
   */
  #oldestLiveMs: number | null | undefined = undefined;
  #oldestLiveAt = 0;
  /** When a partition held back by a pending notification is looked at again. */
  #notifyingCheckAt = 0;

  constructor(
    sql: SqlStorage,
    partitions: Partitions,
    counts: TaskCounts,
    counted: (from: TaskState | null, to: TaskState | null, n: number) => void,
  ) {
    this.#sql = sql;
    this.#partitions = partitions;
    this.#counts = counts;
    this.#counted = counted;
  }

  /** A result was numbered: with none in the live table before, it is the oldest. */
  resultAdded(): void {
    if (this.#oldestLiveMs === null) this.#oldestLiveMs = undefined;
  }

  /** Look everything up again (after writes that bypassed the store: tests). */
  forget(): void {
    this.#oldestLiveMs = undefined;
  }

  /**
   * Seals the live table once its oldest result is older than the partition period, and drops,
   * oldest first, the partitions whose every result is past retention (one whose task has a
   * notification pending holds back itself and the newer ones: looked at again a minute later).
   * Answers the tasks dropped.
   */
  retire(nowMs: number, retentionMs: number): { deleted: number } {
    let written = 0;
    const oldest = this.#oldestLiveFinishedMs(nowMs);
    if (oldest !== null && oldest + partitionPeriodMs(retentionMs) <= nowMs) {
      // The results numbered so far go to the log first: its rows then end where the partition does.
      this.#counts.checkpoint(nowMs, true);
      const sealed = this.#partitions.seal(nowMs, this.#counts.currentSeq());
      if (sealed) written += sealed.written;
      this.#oldestLiveMs = undefined;
    }
    let deleted = 0;
    let droppedThrough = 0;
    for (const partition of [...this.#partitions.list]) {
      if (partition.maxFinishedMs + retentionMs > nowMs) break;
      if (this.#partitions.notifying(partition)) {
        this.#notifyingCheckAt = nowMs + RECHECK_MS;
        break;
      }
      const dropped = this.#partitions.drop(partition);
      written += dropped.written;
      deleted += dropped.succeeded + dropped.failed;
      droppedThrough = partition.lastSeq;
      this.#counted(10, null, dropped.succeeded);
      this.#counted(11, null, dropped.failed);
    }
    if (droppedThrough > 0) written += this.#counts.log.dropThrough(droppedThrough);
    meters.retention_rows_written += written;
    meters.retention_tasks += deleted;
    return { deleted };
  }

  /** When retention next has work: sealing the live table, or dropping the oldest partition. */
  dueMs(nowMs: number, retentionMs: number): number | null {
    const oldest = this.#oldestLiveFinishedMs(nowMs);
    const seal = oldest === null ? null : oldest + partitionPeriodMs(retentionMs);
    const first = this.#partitions.list[0];
    const drop = first ? Math.max(first.maxFinishedMs + retentionMs, this.#notifyingCheckAt) : null;
    const due = [seal, drop].filter((at): at is number => at !== null);
    return due.length ? Math.min(...due) : null;
  }

  #oldestLiveFinishedMs(nowMs: number): number | null {
    if (this.#oldestLiveMs === undefined || nowMs - this.#oldestLiveAt > RECHECK_MS) {
      this.#oldestLiveMs = null;
      this.#oldestLiveAt = nowMs;
      for (const entry of this.#counts.log.after(this.#partitions.lastSealedSeq())) {
        // A shard's result (`<id>:<seq>`, shards/): its row is not here. The scan stops at it, so
        // it never walks a sharded app's log (shard-home.ts trimLog drops those entries).
        if (entry.id.includes(":")) break;
        const row = this.#sql
          .exec<{ seq: number | null; finished_ms: number }>(
            "SELECT seq, finished_ms FROM tasks WHERE id = ?",
            entry.id,
          )
          .toArray()[0];
        if (row?.seq !== entry.seq) continue; // retried, or in a partition: not this result
        this.#oldestLiveMs = row.finished_ms;
        break;
      }
    }
    return this.#oldestLiveMs;
  }
}
