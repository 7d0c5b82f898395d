/**
 * What callers of an app's object hand it and get back: the types of its RPC contract that are
 * not wire types of their own (those are in shared/types.ts).
 */
import type { Caller } from "../auth/authenticate";
import type { CircuitState } from "./limits";
import type { RecordedRequest, TaskRecord, TaskState } from "../shared/types";

/** Control headers of a submission, parsed (submit/options.ts). */
export interface SubmitOptions {
  /** Unix ms before which the first attempt must not start. */
  notBeforeMs: number;
  /** Same id within the app's retention → the same task. */
  deduplicationId: string | null;
  /** Overrides the app's max_attempts (retries + 1). */
  maxAttempts: number | null;
  /** Overrides the app's per-attempt timeout, seconds. */
  timeout: number | null;
  /** URL that receives the finished task record. */
  callback: string | null;
  /** Ask the handler to fail fast (App Engine's X-AppEngine-FailFast). */
  failFast: boolean;
}

export interface SubmitInput {
  /** Who submits: the admin (verified by the Worker) or a key of this app, verified here. */
  caller: Caller;
  reqId: string;
  request: RecordedRequest;
  options: SubmitOptions;
  /** A FunctionGraph invocation: deliver to the app's `invoke_path`, not `request.path`. */
  toInvokePath?: boolean;
  /** The shard object the submission is meant for (its name): any other object refuses it. */
  shard?: string;
}

/** How the app's tasks are stored, as the Worker caches it to send submissions to shards. */
export interface StorageRoute {
  shards: number;
  partition: number;
}

export interface Submitted {
  id: string;
  deduplicated: boolean;
  /** How the app stores tasks now. */
  route?: StorageRoute;
}

export interface TaskPage {
  tasks: TaskRecord[];
  cursor: string | null;
}

/** What `GET /v1/tasks` asks for, as id bounds (see shared/task-id.ts `timePrefix`). */
export interface TaskQuery {
  state: TaskState | null;
  limit: number;
  /** Only ids below this: the cursor, or the time prefix of `created_before`. */
  below: string | null;
  /** Only ids from this on: the time prefix of `created_after`. */
  from: string | null;
}

/** Whether the app delivers now: `closed` (normally), `held` (Retry-After), `open`/`half-open` (circuit). */
export interface DeliveryState {
  state: CircuitState | "held";
  reason: string | null;
  until: number | null;
}

/** What a redrive answers (SPEC §7). */
export type Redriven = { matched: number; retried: number; remaining: number };
/** What a purge answers. */
export type Purged = { deleted: number; remaining: number };
