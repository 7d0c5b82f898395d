/**
 * Bulk operations on an app's tasks (Cloud Tasks' purge, and redrive of failed tasks): the
 * request's criteria, validated, and the jobs that carry them out in bounded batches. The
 * first batch runs in the request; the alarm runs the rest, one batch per alarm, so any
 * backlog size works and no single turn of the object does unbounded work.
 */
import type { AppConfig } from "../config/app-config";
import type { AppStore, RedriveCriteria } from "./store";
import { badRequest } from "../http/errors";

/** Tasks touched per batch. */
export const BULK_BATCH = 500;

export interface BulkJob {
  kind: "redrive" | "purge";
  redrive?: RedriveCriteria;
  /** Purge: created before, unix ms. */
  untilMs: number;
  /** The last task id done: each task is touched once, in id order. */
  cursor: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const unixSeconds = (value: unknown, field: string): number | null => {
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1e11) {
    throw badRequest(`invalid_${field}`, `${field} must be unix seconds`);
  }
  return Math.round(value * 1000);
};

/** `POST /v1/apps/<name>/redrive` body. */
export function parseRedrive(input: unknown, nowMs: number): { criteria: RedriveCriteria; dryRun: boolean } {
  if (!isRecord(input)) throw badRequest("invalid_body", "expected a JSON object");
  for (const key of Object.keys(input)) {
    if (!["state", "since", "until", "status_code", "dry_run"].includes(key))
      throw badRequest("unknown_field", `unknown field: ${key}`);
  }
  if (input["state"] !== 11) throw badRequest("invalid_state", "redrive takes failed tasks: state must be 11");
  const statusCode = input["status_code"];
  if (
    statusCode !== undefined &&
    statusCode !== null &&
    (typeof statusCode !== "number" || !Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599)
  ) {
    throw badRequest("invalid_status_code", "status_code must be an HTTP status");
  }
  const dryRun = input["dry_run"];
  if (dryRun !== undefined && typeof dryRun !== "boolean")
    throw badRequest("invalid_dry_run", "dry_run must be true or false");
  const sinceMs = unixSeconds(input["since"], "since");
  const untilMs = Math.min(unixSeconds(input["until"], "until") ?? nowMs + 1, nowMs + 1);
  return {
    criteria: { sinceMs, untilMs, statusCode: (statusCode as number | undefined) ?? null },
    dryRun: dryRun === true,
  };
}

/** `POST /v1/apps/<name>/purge` body: Cloud Tasks' purge drops waiting tasks. */
export function parsePurge(input: unknown): void {
  if (!isRecord(input) || input["state"] !== 0 || Object.keys(input).some((key) => key !== "state")) {
    throw badRequest("invalid_state", 'purge drops waiting tasks: the body is {"state": 0}');
  }
}

/** The jobs still to run, kept in the object's SQLite so a restart carries them on. */
export function pendingJobs(store: AppStore): BulkJob[] {
  return JSON.parse(store.meta.get("jobs") ?? "[]") as BulkJob[];
}

/**
 * Runs one batch of `job` (synchronous SQLite work) and keeps it for the alarm while more may
 * remain. Answers how many tasks it touched.
 */
export function runJob(store: AppStore, config: AppConfig, job: BulkJob): number {
  const now = Date.now();
  let touched: string[];
  let next: string | null;
  if (job.kind === "redrive") {
    touched = store.reads.failedMatching(job.redrive!, job.cursor, BULK_BATCH);
    for (const id of touched) store.tasks.resetForRetry(id, now, config.retry.max_attempts);
    next = touched.length === BULK_BATCH ? touched[touched.length - 1]! : null;
  } else {
    // Running tasks are passed over (their attempt decides); the cursor moves past them.
    const batch = store.tasks.deleteWaiting(job.untilMs, job.cursor, BULK_BATCH);
    touched = batch.deleted;
    next = batch.cursor;
    // A purged task that had finished once (and was retried) may still have a notification to send.
    store.notifications.deleteForTasks(touched);
  }
  const same = (other: BulkJob) =>
    other.kind === job.kind && other.cursor === job.cursor && other.untilMs === job.untilMs;
  const jobs = pendingJobs(store).filter((other) => !same(other));
  if (next !== null) jobs.push({ ...job, cursor: next });
  store.meta.set("jobs", JSON.stringify(jobs));
  return touched.length;
}
