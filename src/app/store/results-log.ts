/**
 * The results in the order they were numbered (their seqs), without an index entry per result:
 * an index on seq cost a billed row at every finish. The results numbered since the last
 * checkpoint are kept in memory (the tail); each checkpoint writes the tail as one row of
 * results_log, in its transaction (task-counts.ts). The feed's replay, retention (the live
 * table's oldest result) and the counts' rebuild read the log, then the tail. An entry whose task no longer
 * carries that seq (made to wait again, or deleted) is passed over, so the log is never updated
 * in place; its rows go with the partition holding their results (partitions.ts).
 *
 * After a restart the tail is rebuilt by a scan of the primary key from the checkpoint's waiting
 * bound (TaskCounts): every task unfinished at the checkpoint had an id at or above it, but
 * parked ones, and finishing one of those writes the checkpoint at once.
 */

import { inChunks } from "./sql";

/** One result: its seq and its task. */
export interface LogEntry {
  seq: number;
  id: string;
}

/** A stored row of the log: entries as JSON `[[seq, id], …]`, in seq order. */
interface LogRow extends Record<string, SqlStorageValue> {
  first_seq: number;
  entries: string;
}

/** A tail longer than this is written at the batch's end, whatever the time (a row holds at most 2 MB). */
export const TAIL_FLUSH_ENTRIES = 20_000;

const parse = (row: LogRow): LogEntry[] =>
  (JSON.parse(row.entries) as [number, string][]).map(([seq, id]) => ({ seq, id }));

export class ResultsLog {
  readonly #sql: SqlStorage;
  /** Reads what the log depends on before it is read (the counts' rebuild restores the tail). */
  readonly #ready: () => void;

  /** Results numbered since the last row written, in seq order. */
  #tail: LogEntry[] = [];
  /** The open batch's start: the tail's length then, and the tail it wrote (a checkpoint that may roll back); null: no batch. */
  #batch: { length: number; flushed: LogEntry[] | null } | null = null;

  constructor(sql: SqlStorage, ready: () => void) {
    this.#sql = sql;
    this.#ready = ready;
  }

  // ---- what the counts tell it --------------------------------------------------------------

  /** Result `seq` is task `id`'s. */
  append(seq: number, id: string): void {
    this.#tail.push({ seq, id });
  }

  get tailLength(): number {
    return this.#tail.length;
  }

  /** After a restart: the results numbered since the checkpoint, found by the counts' rebuild. */
  restore(entries: LogEntry[]): void {
    this.#tail = entries.sort((a, b) => a.seq - b.seq);
  }

  /** Writes the tail as one row (with the checkpoint, in its transaction). */
  flush(): void {
    if (this.#tail.length === 0) return;
    const tail = this.#tail;
    this.#sql.exec(
      "INSERT INTO results_log (first_seq, last_seq, entries) VALUES (?, ?, ?)",
      tail[0]!.seq,
      tail[tail.length - 1]!.seq,
      JSON.stringify(tail.map((entry) => [entry.seq, entry.id])),
    );
    if (this.#batch) this.#batch.flushed ??= tail;
    this.#tail = [];
  }

  // ---- the journal (a group commit, and savepoints inside it) -------------------------------

  openBatch(): void {
    this.#batch = { length: this.#tail.length, flushed: null };
  }

  commitBatch(): void {
    this.#batch = null;
  }

  /** The batch rolled back: its results and the row it wrote never happened. */
  discardBatch(): void {
    const batch = this.#batch;
    if (!batch) return;
    // A flush moved the tail to a row: what the batch began with is back in memory.
    if (batch.flushed) this.#tail = batch.flushed.slice(0, batch.length);
    else this.#tail.length = Math.min(this.#tail.length, batch.length);
    this.#batch = null;
  }

  /** A savepoint (inside a batch, before its checkpoint): calling the answer drops what came after. */
  mark(): () => void {
    const length = this.#tail.length;
    return () => {
      this.#tail.length = Math.min(this.#tail.length, length);
    };
  }

  // ---- reads --------------------------------------------------------------------------------

  /** Entries numbered after `since`, in order: the rows from the one holding since + 1, then the tail (read lazily). */
  *after(since: number): Generator<LogEntry> {
    this.#ready();
    // A row at a time, each read whole (see sql.ts, inChunks): a row may hold 20,000 entries.
    const rows = inChunks<LogRow>(
      (after) =>
        this.#sql
          .exec<LogRow>(
            after
              ? "SELECT first_seq, entries FROM results_log WHERE first_seq > ? ORDER BY first_seq LIMIT 1"
              : `SELECT first_seq, entries FROM results_log
                 WHERE first_seq >= COALESCE((SELECT MAX(first_seq) FROM results_log WHERE first_seq <= ?), 0)
                 ORDER BY first_seq LIMIT 1`,
            after ? after.first_seq : since + 1,
          )
          .toArray(),
      1,
    );
    for (const row of rows) for (const entry of parse(row)) if (entry.seq > since) yield entry;
    // Copied: the tail may grow or be written while the caller reads.
    for (const entry of [...this.#tail]) if (entry.seq > since) yield entry;
  }

  /** Drops the rows of results numbered up to `seq` (a dropped partition's): answers the rows written. */
  dropThrough(seq: number): number {
    return this.#sql.exec("DELETE FROM results_log WHERE last_seq <= ?", seq).rowsWritten;
  }
}
