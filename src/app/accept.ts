/**
 * Accepting a submission, inside the group commit's transaction: the app's limits checked
 * (body size, a task that could outlive its retention), a duplicate found by its deduplication
 * id, the task inserted and, when nothing holds it back, its queue window slot taken so its
 * message goes out with the group's commit. Synchronous SQLite work.
 */
import type { AppConfig } from "../config/app-config";
import { splitInvokePath } from "../config/app-config";
import { retryLifetimeSeconds } from "../config/retry-policy";
import { fail, ok, type Outcome } from "../http/errors";
import type { Admission } from "./admission";
import type { SubmitInput, Submitted } from "./contract";
import type { Outbox } from "./outbox";
import type { TaskStore } from "./store";

export interface AcceptContext {
  config: AppConfig;
  tasks: TaskStore;
  admission: Admission;
  outbox: Outbox;
  /** The new task's id (its time, and a shard's route). */
  newId: () => string;
}

/** Validates and inserts one submission. */
export function accept(
  { config, tasks, admission, outbox, newId }: AcceptContext,
  input: SubmitInput,
  now: number,
): Outcome<Submitted> {
  if (input.request.body.byteLength > config.max_body_bytes) {
    return fail(413, "body_too_large", `request body exceeds this app's limit of ${config.max_body_bytes} bytes`);
  }
  const { options } = input;
  // A task must be able to run, and retry, before its retention ends: it would expire unrun.
  const delayMs = options.notBeforeMs - now;
  const policy = options.maxAttempts === null ? config.retry : { ...config.retry, max_attempts: options.maxAttempts };
  if (delayMs + retryLifetimeSeconds(policy) * 1000 >= config.retention * 1000) {
    return delayMs > 0
      ? fail(
          400,
          "delay_exceeds_retention",
          `the task would run, or still be retrying, after this app's retention (${config.retention} s) ends`,
        )
      : fail(
          400,
          "retries_exceed_retention",
          `with these retries the task could still be retrying when this app's retention (${config.retention} s) ends`,
        );
  }
  if (options.deduplicationId !== null) {
    const existing = tasks.findDuplicate(options.deduplicationId, now - config.retention * 1000);
    if (existing) return ok({ id: existing, deduplicated: true });
    tasks.releaseDeduplicationId(options.deduplicationId);
  }
  const id = newId();
  // Sent with this group's commit when due and the queue window has room.
  // Limited apps leave sending to the outbox after the commit, which applies the limits.
  const dispatched =
    config.state === "Active" && options.notBeforeMs <= now && !admission.limited(config, now) && outbox.takeSlot(id);
  tasks.insert({
    id,
    reqId: input.reqId,
    request: input.toInvokePath ? { ...input.request, ...splitInvokePath(config.invoke_path) } : input.request,
    createdMs: now,
    etaMs: options.notBeforeMs,
    dispatchedMs: dispatched ? now : null,
    deduplicationId: options.deduplicationId,
    maxAttempts: options.maxAttempts,
    timeout: options.timeout,
    callback: options.callback,
    failFast: options.failFast,
  });
  return ok({ id, deduplicated: false });
}

/** Outcome of a submission whose write failed: a full object is no reason to retry. */
export function storageFailure(error: unknown): Outcome<never> {
  const message = error instanceof Error ? error.message : String(error);
  if (/SQLITE_FULL|database or disk is full|storage.*(limit|full|exceeded)/i.test(message)) {
    return fail(
      507,
      "storage_full",
      "this app's storage is full (10 GB per app): lower its retention or delete it and start afresh",
    );
  }
  return fail(503, "unavailable", "the task could not be stored; retry");
}
