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
 * The partial index that holds the tasks of a state, by id, where one is worth its write:
 * waiting tasks (the outbox's backlog, expiry, purge) and failed ones (few; redrive). Running
 * attempts are kept in memory; succeeded tasks (most of the table) are listed by the primary key.
 */
export const STATE_INDEX: Partial<Record<TaskState, string>> = {
  0: "tasks_waiting",
  11: "tasks_failed",
};

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
