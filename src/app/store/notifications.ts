/**
 * The app's notifications table: finished-task records to POST to a task's callback or the
 * app's notify url, each attempt's lease, and the outbox's view of them.
 */
import type { NotificationKind, NotificationRow } from "./rows";

export class NotificationStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /**
   * Whether any notification is stored, kept with the writes (null: ask): most apps have none,
   * and the outbox and the alarm ask after every commit, each a scan of the table.
   */
  #anyNotification: boolean | null = null;

  /** Whether any notification is pending (the table holds them until delivered or given up). */
  any(): boolean {
    return this.#hasNotifications();
  }

  #hasNotifications(): boolean {
    this.#anyNotification ??=
      this.#sql.exec<{ any: number }>("SELECT EXISTS (SELECT 1 FROM notifications) AS any").one().any === 1;
    return this.#anyNotification;
  }

  add(taskId: string, kind: NotificationKind, url: string, nowMs: number): void {
    // Set first: should this write roll back, a stale true only costs a query that finds none.
    this.#anyNotification = true;
    this.#sql.exec(
      `INSERT INTO notifications (task_id, kind, url, eta_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT(task_id, kind) DO UPDATE SET url = excluded.url, attempts = 0, eta_ms = excluded.eta_ms, dispatched_ms = NULL`,
      taskId,
      kind,
      url,
      nowMs,
    );
  }

  get(taskId: string, kind: NotificationKind): NotificationRow | null {
    return (
      this.#sql
        .exec<NotificationRow>("SELECT * FROM notifications WHERE task_id = ? AND kind = ?", taskId, kind)
        .toArray()[0] ?? null
    );
  }

  /** Starts attempt `attempt`; until `leaseUntilMs` a duplicate message finds it not due. */
  start(taskId: string, kind: NotificationKind, attempt: number, leaseUntilMs: number): void {
    this.#sql.exec(
      "UPDATE notifications SET attempts = ?, eta_ms = ?, dispatched_ms = NULL WHERE task_id = ? AND kind = ?",
      attempt,
      leaseUntilMs,
      taskId,
      kind,
    );
  }

  reschedule(taskId: string, kind: NotificationKind, etaMs: number): void {
    this.#sql.exec(
      "UPDATE notifications SET eta_ms = ?, dispatched_ms = NULL WHERE task_id = ? AND kind = ?",
      etaMs,
      taskId,
      kind,
    );
  }

  delete(taskId: string, kind: NotificationKind): void {
    this.#sql.exec("DELETE FROM notifications WHERE task_id = ? AND kind = ?", taskId, kind);
    this.#anyNotification = null;
  }

  /** Notifications due and without a message in flight (sent messages older than `staleBeforeMs` count as lost). */
  due(nowMs: number, staleBeforeMs: number, limit: number): NotificationRow[] {
    if (!this.#hasNotifications() || limit <= 0) return [];
    // Each side reads its partial index up to the first row that does not qualify.
    const unsent = this.#sql
      .exec<NotificationRow>(
        "SELECT * FROM notifications INDEXED BY notifications_unsent WHERE dispatched_ms IS NULL AND eta_ms <= ? ORDER BY eta_ms LIMIT ?",
        nowMs,
        limit,
      )
      .toArray();
    if (unsent.length === limit) return unsent;
    const lost = this.#sql
      .exec<NotificationRow>(
        "SELECT * FROM notifications INDEXED BY notifications_sent WHERE dispatched_ms IS NOT NULL AND dispatched_ms < ? ORDER BY dispatched_ms LIMIT ?",
        staleBeforeMs,
        limit - unsent.length,
      )
      .toArray();
    return [...unsent, ...lost];
  }

  markDispatched(rows: NotificationRow[], nowMs: number): void {
    for (const row of rows) {
      this.#sql.exec(
        "UPDATE notifications SET dispatched_ms = ? WHERE task_id = ? AND kind = ?",
        nowMs,
        row.task_id,
        row.kind,
      );
    }
  }

  clearDispatched(rows: NotificationRow[]): void {
    for (const row of rows) {
      this.#sql.exec(
        "UPDATE notifications SET dispatched_ms = NULL WHERE task_id = ? AND kind = ?",
        row.task_id,
        row.kind,
      );
    }
  }

  /** The next notification due, or the re-send check of one sent before `lostSentBefore` (the object's wake-up). */
  nextWakeMs(redispatchAfterMs: number, lostSentBefore: number): number | null {
    if (!this.#hasNotifications()) return null;
    const row = this.#sql
      .exec<{ due: number | null; sent: number | null }>(
        `SELECT
           (SELECT MIN(eta_ms) FROM notifications INDEXED BY notifications_unsent WHERE dispatched_ms IS NULL) AS due,
           (SELECT MIN(dispatched_ms) FROM notifications INDEXED BY notifications_sent WHERE dispatched_ms IS NOT NULL) AS sent`,
      )
      .one();
    const lostCheck = row.sent === null || row.sent >= lostSentBefore ? null : row.sent + redispatchAfterMs;
    const candidates = [row.due, lostCheck].filter((at): at is number => at !== null);
    return candidates.length ? Math.min(...candidates) : null;
  }

  /** Drops every notification of these tasks (they were deleted: nothing is left to send). */
  deleteForTasks(taskIds: string[]): void {
    if (!this.#hasNotifications()) return;
    for (let i = 0; i < taskIds.length; i += 100) {
      const chunk = taskIds.slice(i, i + 100);
      this.#sql.exec(`DELETE FROM notifications WHERE task_id IN (${chunk.map(() => "?").join(",")})`, ...chunk);
    }
    this.#anyNotification = null;
  }

  /** Reads again what it keeps in memory (after a write to the table that bypassed the store). */
  forgetCaches(): void {
    this.#anyNotification = null;
  }
}
