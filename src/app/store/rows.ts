/** The shapes of the app store's rows, and of what its writes take. */
import type { HeaderMap, RecordedRequest, TaskState } from "../../shared/types";

/** What one page of reads cost, for tests and stats. */
export interface ReadMeter {
  rows: number;
  bytes: number;
}

export interface TaskRow extends Record<string, SqlStorageValue> {
  id: string;
  req_id: string;
  method: string;
  path: string;
  raw_query: string;
  header: string;
  body: ArrayBuffer;
  created_ms: number;
  state: TaskState;
  attempts: number;
  executions: number;
  eta_ms: number;
  lease_ms: number | null;
  first_attempt_ms: number | null;
  last_status: number | null;
  retry_reason: string | null;
  response_status: number | null;
  response_header: string | null;
  response_body: ArrayBuffer | null;
  exec_ms: number | null;
  finished_ms: number | null;
  error: string | null;
  dedup_id: string | null;
  max_attempts: number | null;
  timeout: number | null;
  callback: string | null;
  seq: number | null;
  fail_fast: number | null;
}

export type NotificationKind = "callback" | "notify";

export interface NotificationRow extends Record<string, SqlStorageValue> {
  task_id: string;
  kind: NotificationKind;
  url: string;
  attempts: number;
  eta_ms: number;
  dispatched_ms: number | null;
}

export interface NewTask {
  id: string;
  reqId: string;
  request: RecordedRequest;
  createdMs: number;
  etaMs: number;
  dispatchedMs: number | null;
  deduplicationId: string | null;
  maxAttempts: number | null;
  timeout: number | null;
  callback: string | null;
  failFast?: boolean;
}

export interface Outcome {
  status: number;
  header: HeaderMap;
  body: Uint8Array;
}

/** What one attempt got, written with the transition it causes. */
export interface AttemptRecord {
  atMs: number;
  /** The origin's response (kept as the task's last response), or null when it gave none. */
  outcome: Outcome | null;
  /** Why there was no response (`timeout`, `network error`); null with a response. */
  error: string | null;
  /** Why the next attempt is made (`HTTP 503`, `timeout: …`); null after a success. */
  retryReason: string | null;
}

/** An origin's response as an attempt records it. */
export interface Outcome {
  status: number;
  header: HeaderMap;
  body: Uint8Array;
}

export interface RedriveCriteria {
  /** Created at or after, unix ms. */
  sinceMs: number | null;
  /** Created before, unix ms (the request's time when not given: later failures are not redriven). */
  untilMs: number;
  statusCode: number | null;
}
