/**
 * The SQL pieces the tasks table's queries share: the listing's columns, the per-state indexes,
 * the SET terms an attempt writes, and the redrive range. Pure.
 */
import { timePrefix } from "../../shared/task-id";
import type { TaskState } from "../../shared/types";
import type { AttemptRecord, RedriveCriteria, TaskRow } from "./rows";

/** Every column but the two bodies: what listings read (a row's bodies can be ~2 MB). */
export const SUMMARY_COLUMNS = `id, req_id, method, path, raw_query, header, X'' AS body, created_ms, state, attempts, executions, eta_ms,
  lease_ms, first_attempt_ms, last_status, retry_reason, response_status, response_header, NULL AS response_body,
  exec_ms, finished_ms, error, dedup_id, max_attempts, timeout, callback, seq, fail_fast`;

/** Roughly how many bytes a row holds in memory. */
export const rowBytes = (row: TaskRow) =>
  row.body.byteLength +
  (row.response_body?.byteLength ?? 0) +
  row.header.length +
  (row.response_header?.length ?? 0) +
  row.path.length +
  row.raw_query.length +
  256;

/**
 * A waiting task is parked when it is due more than this after its creation (a long delay or
 * backoff): only parked tasks have an index entry (tasks_parked, by when they are due). The
 * others ("near") are found by the primary key from a lower bound of their ids (messages-out.ts).
 */
export const PARKED_AFTER_MS = 60_000;
/** tasks_parked's condition, word for word: a query uses a partial index only when its terms include the index's. */
export const PARKED = `state = 0 AND eta_ms > created_ms + ${PARKED_AFTER_MS}`;

/**
 * tasks_restarted's condition: waiting tasks restarted by a retry or redrive of a failed task,
 * whose retention counts from then (a rare write: the index entry is paid by the restart).
 */
export const RESTARTED = "state = 0 AND restarted_ms IS NOT NULL";

/**
 * Waiting tasks by id, as one compound SELECT of `columns` with `terms` (on id; ?1 is taken):
 * the near ones from `?1` (no near waiting task has a lower id: see MessagesOut.waitingFrom) by
 * the primary key, and the parked ones below it by their index. Bindings: the bound, then the terms'.
 */
export const waitingRows = (columns: string, terms = "") =>
  `SELECT ${columns} FROM tasks WHERE state = 0 AND id >= ?1 ${terms}
   UNION ALL SELECT ${columns} FROM tasks INDEXED BY tasks_parked WHERE ${PARKED} AND id < ?1 ${terms}`;

/** The SET terms recording `attempt` (and a task's final `error`, which wins over the attempt's). */
export function attemptAssignments(
  attempt: AttemptRecord,
  finalError?: string,
): { set: string; values: SqlStorageValue[] } {
  const { outcome } = attempt;
  const error = finalError ?? (outcome ? null : attempt.error);
  if (!outcome)
    return { set: "error = ?, exec_ms = ?, retry_reason = ?", values: [error, attempt.atMs, attempt.retryReason] };
  return {
    set: `executions = executions + 1, last_status = ?, response_status = ?, response_header = ?, response_body = ?,
      error = ?, exec_ms = ?, retry_reason = ?`,
    values: [
      outcome.status,
      outcome.status,
      JSON.stringify(outcome.header),
      blob(outcome.body),
      error,
      attempt.atMs,
      attempt.retryReason,
    ],
  };
}

/**
 * Rows read a chunk at a time, each chunk read whole (`read(after, size)`: the rows after `after`,
 * at most `size`, in order): the caller may stop at any row and no statement is left running.
 * Every read of the store ends its cursors so: workerd ends a partly read cursor's statement
 * only when the cursor is garbage-collected, and SQLite refuses DROP TABLE / DROP INDEX while
 * any statement runs (SQLITE_LOCKED).
 */
export function* inChunks<T>(read: (after: T | null, size: number) => T[], size: number): Generator<T> {
  let after: T | null = null;
  for (;;) {
    const rows = read(after, size);
    yield* rows;
    if (rows.length < size) return;
    after = rows[rows.length - 1]!;
  }
}

/** Copies a view into a standalone ArrayBuffer, the form SQLite binds as BLOB. */
export const blob = (bytes: Uint8Array): ArrayBuffer => bytes.slice().buffer as ArrayBuffer;

export const maxString = (a: string, b: string) => (a > b ? a : b);

/**
 * A redrive's tasks: failed, created in [since, until), with the given last status, after a
 * cursor (a range of tasks_failed; a 12-digit time prefix sorts before its ids).
 */
export const FAILED_MATCHING = "state = 11 AND id > ?1 AND id < ?2 AND (?3 IS NULL OR response_status = ?3)";
export const failedMatchingBindings = (criteria: RedriveCriteria, cursor: string): SqlStorageValue[] => [
  criteria.sinceMs === null ? cursor : maxString(cursor, timePrefix(criteria.sinceMs)),
  timePrefix(criteria.untilMs),
  criteria.statusCode,
];
