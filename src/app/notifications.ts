/**
 * Notifications: a finished task's record POSTed to its callback and to the app's notify url.
 * They are queued in the transaction that finishes the task (state-machine.ts) and sent
 * through the same queue; this is one attempt's start and end. Synchronous SQLite work.
 */
import type { AppConfig, RetryPolicy } from "./config";
import { LEASE_GRACE_MS } from "./dispatcher";
import { toRecord, type NotificationKind, type TaskStore } from "./task-store";
import { jitteredBackoffSeconds } from "../delivery/backoff";
import type { NotificationDelivery } from "../shared/types";
import { log } from "../shared/log";

/** How long one POST may take, and the fixed retry policy (receivers are not the origin). */
export const NOTIFY_TIMEOUT_MS = 30_000;
export const NOTIFY_RETRY: RetryPolicy = { max_attempts: 10, min_backoff: 1, max_backoff: 600, max_doublings: 10, max_retry_duration: 0 };

/** Starts one POST of a finished task's record; null when there is nothing (more) to send or it is not due. */
export function beginNotification(
  store: TaskStore,
  config: AppConfig,
  signingSecrets: string[],
  taskId: string,
  kind: NotificationKind,
  now: number,
): { delivery: NotificationDelivery; leaseUntilMs: number } | null {
  const row = store.getNotification(taskId, kind);
  const task = row ? store.get(taskId) : null;
  if (!row || !task || row.eta_ms > now) return null;
  const attempt = row.attempts + 1;
  const leaseUntilMs = now + NOTIFY_TIMEOUT_MS + LEASE_GRACE_MS;
  store.startNotification(taskId, kind, attempt, leaseUntilMs);
  const delivery = { app: config.name, taskId, kind, url: row.url, attempt, body: JSON.stringify(toRecord(task, config.name)), signingSecrets };
  return { delivery, leaseUntilMs };
}

/** Ends a notification attempt: delivered, or retried with backoff until NOTIFY_RETRY is spent. */
export function finishNotification(store: TaskStore, taskId: string, kind: NotificationKind, attempt: number, delivered: boolean, detail: string, now: number): void {
  const row = store.getNotification(taskId, kind);
  if (!row || row.attempts !== attempt) return;
  if (delivered) {
    store.deleteNotification(taskId, kind);
  } else if (attempt >= NOTIFY_RETRY.max_attempts) {
    log("error", "notification_given_up", { task: taskId, kind, host: new URL(row.url).host, attempt, detail });
    store.deleteNotification(taskId, kind);
  } else {
    store.rescheduleNotification(taskId, kind, now + Math.round(jitteredBackoffSeconds(NOTIFY_RETRY, attempt) * 1000));
  }
}
