/**
 * Notifications: a finished task's record POSTed to its callback and to the app's notify url.
 * They are queued in the transaction that finishes the task (state-machine.ts) and sent
 * through the same queue; this is one attempt's start and end. Synchronous SQLite work.
 */
import type { AppConfig } from "../config/app-config";
import type { RetryPolicy } from "../config/retry-policy";
import { LEASE_GRACE_MS } from "./outbox";
import { toRecord, type AppStore, type NotificationKind } from "./store";
import { jitteredBackoffSeconds } from "../config/retry-policy";
import type { NotificationDelivery } from "../shared/types";
import { log } from "../shared/log";

/** How long one POST may take, and the fixed retry policy (receivers are not the origin). */
export const NOTIFY_TIMEOUT_MS = 30_000;
export const NOTIFY_RETRY: RetryPolicy = { max_attempts: 10, min_backoff: 1, max_backoff: 600, max_doublings: 10, max_retry_duration: 0 };

/** Starts one POST of a finished task's record; null when there is nothing (more) to send or it is not due. */
export function beginNotification(
  store: AppStore,
  config: AppConfig,
  signingSecrets: string[],
  taskId: string,
  kind: NotificationKind,
  now: number,
): { delivery: NotificationDelivery; leaseUntilMs: number } | null {
  const row = store.notifications.get(taskId, kind);
  const task = row ? store.tasks.get(taskId) : null;
  if (!row || !task || row.eta_ms > now) return null;
  const attempt = row.attempts + 1;
  const leaseUntilMs = now + NOTIFY_TIMEOUT_MS + LEASE_GRACE_MS;
  store.notifications.start(taskId, kind, attempt, leaseUntilMs);
  const delivery = { app: config.name, taskId, kind, url: row.url, attempt, body: JSON.stringify(toRecord(task, config.name)), signingSecrets, timeoutMs: NOTIFY_TIMEOUT_MS };
  return { delivery, leaseUntilMs };
}

/** Ends a notification attempt: delivered, or retried with backoff until NOTIFY_RETRY is spent. */
export function finishNotification(store: AppStore, taskId: string, kind: NotificationKind, attempt: number, delivered: boolean, detail: string, now: number): void {
  const row = store.notifications.get(taskId, kind);
  if (!row || row.attempts !== attempt) return;
  if (delivered) {
    store.notifications.delete(taskId, kind);
  } else if (attempt >= NOTIFY_RETRY.max_attempts) {
    log("error", "notification_given_up", { task: taskId, kind, host: new URL(row.url).host, attempt, detail });
    store.notifications.delete(taskId, kind);
  } else {
    store.notifications.reschedule(taskId, kind, now + Math.round(jitteredBackoffSeconds(NOTIFY_RETRY, attempt) * 1000));
  }
}
