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
import type { NotificationDelivery, NotificationRef, NotificationReport } from "../shared/types";
import type { GroupCommit } from "./group-commit";
import { signingSecretsOf, type AppIdentity } from "./signing-secrets";
import { log } from "../shared/log";

/** How long one POST may take, and the fixed retry policy (receivers are not the origin). */
export const NOTIFY_TIMEOUT_MS = 30_000;
export const NOTIFY_RETRY: RetryPolicy = {
  max_attempts: 10,
  min_backoff: 1,
  max_backoff: 600,
  max_doublings: 10,
  max_retry_duration: 0,
};

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
  const delivery = {
    app: config.name,
    taskId,
    kind,
    url: row.url,
    attempt,
    body: JSON.stringify(toRecord(task, config.name)),
    signingSecrets,
    timeoutMs: NOTIFY_TIMEOUT_MS,
  };
  return { delivery, leaseUntilMs };
}

/** Ends a notification attempt: delivered, or retried with backoff until NOTIFY_RETRY is spent. */
export function finishNotification(
  store: AppStore,
  taskId: string,
  kind: NotificationKind,
  attempt: number,
  delivered: boolean,
  detail: string,
  now: number,
): void {
  const row = store.notifications.get(taskId, kind);
  if (!row || row.attempts !== attempt) return;
  if (delivered) {
    store.notifications.delete(taskId, kind);
  } else if (attempt >= NOTIFY_RETRY.max_attempts) {
    log("error", "notification_given_up", { task: taskId, kind, host: new URL(row.url).host, attempt, detail });
    store.notifications.delete(taskId, kind);
  } else {
    store.notifications.reschedule(
      taskId,
      kind,
      now + Math.round(jitteredBackoffSeconds(NOTIFY_RETRY, attempt) * 1000),
    );
  }
}

/**
 * Starts several notification attempts in one group commit: the delivery of each that is due,
 * null for the others (and for one that could not be stored: its row keeps its message mark,
 * and the outbox sends it again once that message counts as lost); the earliest lease, for the alarm.
 */
export async function beginNotifications(
  group: GroupCommit,
  store: AppStore,
  config: AppConfig,
  identity: AppIdentity,
  refs: NotificationRef[],
): Promise<{ deliveries: (NotificationDelivery | null)[]; leaseUntilMs: number | null }> {
  const signingSecrets = signingSecretsOf(identity, Date.now());
  const settled = await Promise.allSettled(
    refs.map(({ taskId, kind }) =>
      group.run(() => beginNotification(store, config, signingSecrets, taskId, kind, Date.now())),
    ),
  );
  const begun = settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : null));
  const leases = begun.filter((item) => item !== null).map((item) => item.leaseUntilMs);
  return {
    deliveries: begun.map((item) => item?.delivery ?? null),
    leaseUntilMs: leases.length > 0 ? Math.min(...leases) : null,
  };
}

/** Ends several notification attempts in one group commit; false for each that could not be stored. */
export async function finishNotifications(
  group: GroupCommit,
  store: AppStore,
  reports: NotificationReport[],
): Promise<boolean[]> {
  const settled = await Promise.allSettled(
    reports.map(({ taskId, kind, attempt, delivered, detail }) =>
      group.run(() => finishNotification(store, taskId, kind, attempt, delivered, detail, Date.now())),
    ),
  );
  return settled.map((outcome) => outcome.status === "fulfilled");
}
