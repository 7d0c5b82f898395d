/** A task row as the SPEC §4 task record (Qiniu's shape): the one JSON encoding of a task. */
import { bytesToBase64 } from "../../shared/encoding";
import type { HeaderMap, TaskRecord } from "../../shared/types";
import type { TaskRow } from "./rows";

/** Unix ms as the record's nanoseconds. */
const nanos = (ms: number) => ms * 1_000_000;

/** A row as the SPEC §4 task record; `withBodies: false` leaves bodies out (listings). */
export function toRecord(row: TaskRow, app: string, withBodies = true): TaskRecord {
  const body = (buffer: ArrayBuffer | null) => (withBodies && buffer ? bytesToBase64(new Uint8Array(buffer)) : "");
  // Key order follows Qiniu's record: id, req_id, app, request, created_at, state, response, exec_at, attempts, error.
  const record: TaskRecord = {
    id: row.id,
    req_id: row.req_id,
    app,
    request: {
      method: row.method,
      path: row.path,
      raw_query: row.raw_query,
      header: JSON.parse(row.header) as HeaderMap,
      body: body(row.body),
    },
    created_at: nanos(row.created_ms),
    state: row.state,
    ...(row.response_status !== null && {
      response: {
        status_code: row.response_status,
        header: JSON.parse(row.response_header ?? "{}") as HeaderMap,
        body: body(row.response_body),
      },
    }),
    ...(row.exec_ms !== null && { exec_at: nanos(row.exec_ms) }),
    attempts: row.attempts,
    error: row.error,
  };
  if (row.state === 0) record.eta = Math.floor(row.eta_ms / 1000);
  if (row.callback) record.callback = row.callback;
  return record;
}
