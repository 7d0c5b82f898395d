/**
 * The tasks table's read side: listings (by state, newest first, running attempts overlaid),
 * the feed's resume replay, a redrive's matches and the oldest waiting task, over the live table
 * and the sealed partitions (partitions.ts). Reads only; the writes and what they keep in step
 * are in tasks.ts.
 */
import { createdMsOf } from "../../shared/task-id";
import type { TaskState } from "../../shared/types";
import type { Partitions } from "./partitions";
import type { ResultsLog } from "./results-log";
import type { RunningAttempts } from "./running";
import type { ReadMeter, RedriveCriteria, TaskRow } from "./rows";
import { FAILED_MATCHING, SUMMARY_COLUMNS, failedMatchingBindings, inChunks, rowBytes, waitingRows } from "./sql";

/** How much one turn of the resume replay may read: the object has 128 MB in all. */
export const REPLAY_PAGE_BYTES = 8 * 1024 * 1024;

/** A result in the app's sequence of a task a shard object holds: its id and its seq there. */
export interface RemoteResult {
  seq: number;
  id: string;
  shardSeq: number;
}

/** What a replay page counts for a shard's result it has not read (records are small but for bodies). */
export const REMOTE_RESULT_BYTES = 4_096;

export class TaskReads {
  readonly #sql: SqlStorage;
  readonly #running: RunningAttempts;
  /** The lowest id a near waiting task may have (TaskStore.waitingFrom). */
  readonly #waitingFrom: () => string;

  /** The largest page of replay reads since the object started (tests read it). */
  readonly largestReplayPage: ReadMeter = { rows: 0, bytes: 0 };

  /** The results in seq order (results-log.ts). */
  readonly #results: ResultsLog;

  /** Sealed tables of results (partitions.ts): read after the live table. */
  readonly #partitions: Partitions;

  constructor(
    sql: SqlStorage,
    running: RunningAttempts,
    waitingFrom: () => string,
    results: ResultsLog,
    partitions: Partitions,
  ) {
    this.#sql = sql;
    this.#running = running;
    this.#waitingFrom = waitingFrom;
    this.#results = results;
    this.#partitions = partitions;
  }

  /**
   * One compound SELECT of `select(table, failedIndex)` over the live table and every partition
   * (UNION ALL: the caller's ORDER BY merges them).
   */
  #everyTable(select: (table: string, failedIndex: string) => string): string {
    return [
      select("tasks", "tasks_failed"),
      ...this.#partitions.tables().map((table) => select(table, `${table}_failed`)),
    ].join(" UNION ALL ");
  }

  /** Up to `limit` failed tasks matching a redrive, after `cursor` in id order. */
  failedMatching(criteria: RedriveCriteria, cursor: string, limit: number): string[] {
    return this.#sql
      .exec<{ id: string }>(
        `${this.#everyTable((table, index) => `SELECT id FROM ${table} INDEXED BY ${index} WHERE ${FAILED_MATCHING}`)}
         ORDER BY id LIMIT ?4`,
        ...failedMatchingBindings(criteria, cursor),
        limit,
      )
      .toArray()
      .map((row) => row.id);
  }

  countFailedMatching(criteria: RedriveCriteria): number {
    let count = 0;
    for (const row of this.#sql.exec<{ n: number }>(
      this.#everyTable(
        (table, index) => `SELECT COUNT(*) AS n FROM ${table} INDEXED BY ${index} WHERE ${FAILED_MATCHING}`,
      ),
      ...failedMatchingBindings(criteria, ""),
    ))
      count += row.n;
    return count;
  }

  /** When the oldest waiting task (not running) was submitted; null when none waits. */
  oldestWaitingCreatedMs(): number | null {
    const from = this.#waitingFrom();
    const waiting = inChunks<{ id: string }>(
      (after, size) =>
        this.#sql
          .exec<{ id: string }>(`${waitingRows("id", "AND id > ?2")} ORDER BY id LIMIT ?3`, from, after?.id ?? "", size)
          .toArray(),
      // Running tasks' rows wait too: the first not running is at most that many in.
      this.#running.size + 1,
    );
    for (const { id } of waiting) if (!this.#running.has(id)) return createdMsOf(id);
    return null;
  }

  /**
   * One page of the resume replay: finished tasks with a seq above `since`, in order, until
   * REPLAY_PAGE_BYTES are read (at least one row). `done` when no later result exists. Results
   * of tasks a shard object holds (logged as `<id>:<shard seq>`: shards/) come as `remote`
   * refs beside the rows, counted at REMOTE_RESULT_BYTES each: the caller fetches them.
   */
  finishedSince(
    since: number,
    budgetBytes = REPLAY_PAGE_BYTES,
  ): { rows: TaskRow[]; remote: RemoteResult[]; done: boolean } {
    const rows: TaskRow[] = [];
    const remote: RemoteResult[] = [];
    let bytes = 0;
    let done = true;
    // The log is read lazily, each result's row when its turn comes: stopping early reads no more.
    for (const entry of this.#results.after(since)) {
      const mark = entry.id.indexOf(":");
      if (mark !== -1) {
        if (rows.length + remote.length > 0 && bytes + REMOTE_RESULT_BYTES > budgetBytes) {
          done = false;
          break;
        }
        remote.push({ seq: entry.seq, id: entry.id.slice(0, mark), shardSeq: Number(entry.id.slice(mark + 1)) });
        bytes += REMOTE_RESULT_BYTES;
        continue;
      }
      const row =
        this.#sql.exec<TaskRow>("SELECT * FROM tasks WHERE id = ?", entry.id).toArray()[0] ??
        this.#partitions.find<TaskRow>(entry.id);
      // Made to wait again (no longer this result) or deleted since: passed over.
      if (!row || row.seq !== entry.seq) continue;
      if (rows.length + remote.length > 0 && bytes + rowBytes(row) > budgetBytes) {
        done = false;
        break;
      }
      rows.push(row);
      bytes += rowBytes(row);
    }
    if (bytes > this.largestReplayPage.bytes) Object.assign(this.largestReplayPage, { rows: rows.length, bytes });
    return { rows, remote, done };
  }

  /**
   * Tasks newest first, without bodies, ids in [`from`, `below`) when given: ids begin with their
   * creation time, so a cursor and a time window are both bounds of one range scan on the primary
   * key, or on the state's own index.
   */
  list(state: TaskState | null, limit: number, below: string | null, from: string | null = null): TaskRow[] {
    if (state === 1) return this.#listRunning(limit, below, from);
    // Bounds on the id, numbered after the parameters before them (waitingRows takes ?1).
    const bounds: string[] = [];
    const terms = (first: number) =>
      [
        below === null ? "" : `AND id < ?${first}`,
        from === null ? "" : `AND id >= ?${first + (below === null ? 0 : 1)}`,
      ].join(" ");
    if (below !== null) bounds.push(below);
    if (from !== null) bounds.push(from);
    // Read whole (see inChunks): running tasks' rows wait, so a page of waiting ones may pass over that many.
    const rowsWanted = state === 0 ? limit + this.#running.size : limit;
    const cursor =
      state === 0
        ? this.#sql.exec<TaskRow>(
            `${waitingRows(SUMMARY_COLUMNS, terms(2))} ORDER BY id DESC LIMIT ${rowsWanted}`,
            this.#waitingFrom(),
            ...bounds,
          )
        : this.#sql.exec<TaskRow>(
            // The state as a literal: a partial index serves only a query whose terms imply its
            // own (failed tasks: each table's failed index; succeeded ones and all: the primary
            // key). Partitions hold finished tasks only.
            `${this.#everyTable(
              (table, index) =>
                `SELECT ${SUMMARY_COLUMNS} FROM ${table} ${state === 11 ? `INDEXED BY ${index}` : ""}
                 WHERE 1 ${state === null ? "" : `AND state = ${Number(state)}`} ${terms(1)}`,
            )} ORDER BY id DESC LIMIT ${rowsWanted}`,
            ...bounds,
          );
    // Running tasks' rows wait: they are passed over (read lazily, as many as needed).
    const rows: TaskRow[] = [];
    for (const row of cursor.toArray()) {
      if (state === 0 && this.#running.has(row.id)) continue;
      rows.push(this.#running.overlay(row));
      if (rows.length >= limit) break;
    }
    return rows;
  }

  /** Running tasks newest first (in memory, at most the window and the consumers' attempts). */
  #listRunning(limit: number, below: string | null, from: string | null): TaskRow[] {
    const ids = this.#running
      .keys()
      .filter((id) => (below === null || id < below) && (from === null || id >= from))
      .sort()
      .reverse();
    const rows: TaskRow[] = [];
    for (const id of ids) {
      const row = this.#sql.exec<TaskRow>(`SELECT ${SUMMARY_COLUMNS} FROM tasks WHERE id = ?`, id).toArray()[0];
      if (row) rows.push(this.#running.overlay(row));
      if (rows.length >= limit) break;
    }
    return rows;
  }
}
