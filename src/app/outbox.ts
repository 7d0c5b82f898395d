/**
 * The app's outbox: what goes from its object to the Cloudflare Queue, and when. It keeps the
 * queue window (at most DISPATCH_WINDOW task messages in flight: the object holds the rest of
 * the backlog), sends due work (tasks, as far as admission lets them out, then notifications),
 * backs off a queue that keeps refusing, and remembers which messages consumers hold (claims)
 * so they are not taken for lost and sent again.
 */
import type { AppConfig } from "../config/app-config";
import type { Admission } from "./admission";
import type { AppStore, NotificationRow } from "./store";
import { TASKS_PER_MESSAGE, type TaskMessage } from "../shared/types";
import { log } from "../shared/log";
import { meters } from "../shared/meters";

/** Queue messages in flight per app: the object keeps the backlog, the queue a bounded window. */
export const DISPATCH_WINDOW = 500;
/**
 * When a sent message whose task has not begun, and that no consumer has claimed, may be lost
 * and is sent again: 30 s after its send, if it was sent before this object woke up (its earlier
 * instance may have died between the send and its mark, and local Queues lose theirs when
 * `wrangler dev` restarts), or once consumers have been idle for this app for 30 s (nothing is
 * taking its messages, so one that has not come is gone). While consumers keep claiming this
 * app's messages, one this instance sent waits its turn in the queue and is not re-sent: a
 * backlog does not grow its own re-sends. A message merely slow to arrive is then sent twice,
 * which the state machine shrugs off.
 */
export const REDISPATCH_AFTER_MS = 30_000;

/**
 * The messages that may be lost are those sent before the time this answers (once 30 s have
 * passed since their send): all of them while consumers are idle for the app, else only those
 * from before the wake-up. Pure.
 */
export function lostCutoff(now: number, wokeAt: number, lastClaimAt: number): number {
  return now - lastClaimAt >= REDISPATCH_AFTER_MS ? now : wokeAt;
}
/** Extra time past an attempt's timeout before its consumer is presumed gone. */
export const LEASE_GRACE_MS = 30_000;
/** Retry delays for a failing queue send: doubling from 1 s to 5 min while it keeps failing. */
const SEND_RETRY_MIN_MS = 1_000;
const SEND_RETRY_MAX_MS = 300_000;
/** One consumer invocation replays at most this many origins at once (delivery/consumer.ts). */
const CONSUMER_CONCURRENCY = 6;
/** Messages per sendBatch (the Queues limit). */
const BATCH = 100;
/**
 * How long new tasks' messages may wait for more new tasks to share them: a message costs three
 * queue operations whatever it carries, and steady traffic commits a task or two per group. Only
 * while new tasks keep coming (one was sent less than this long ago): a lone task goes at once,
 * so light traffic waits for nothing. The tasks are committed (marked sent) before they linger:
 * a message lost with the object is sent again like any other (REDISPATCH_AFTER_MS).
 */
export const DISPATCH_LINGER_MS = 25;

/**
 * Tasks the queue window takes now, `inFlight` being out. A nearly full window waits for a
 * message's worth of room (the begins that free it send again): refilled a slot at a time while
 * draining, it would go out in one-task messages, each three billed queue operations.
 */
export function windowRoom(inFlight: number): number {
  const room = DISPATCH_WINDOW - inFlight;
  return room >= TASKS_PER_MESSAGE || inFlight === 0 ? Math.max(0, room) : 0;
}

export class Outbox {
  readonly #store: () => AppStore;
  readonly #queue: () => Queue;
  readonly #wakeBy: (at: number) => Promise<void>;
  readonly #admission: Admission;
  /** New tasks marked dispatched in the current group, sent once it is committed. */
  #pending: string[] = [];
  /** Committed new tasks waiting (at most DISPATCH_LINGER_MS) to fill a message. */
  #lingering: string[] = [];
  #lingerTimer: ReturnType<typeof setTimeout> | null = null;
  /** When new tasks' messages last went out (0: not since wake-up). */
  #newSentAt = 0;
  /** Free queue-window slots in the current group; undefined until a submission counts them. */
  #windowSlots: number | undefined = undefined;
  /** When this instance started: what was sent before may have been lost with its predecessor. */
  readonly #wokeAt = Date.now();
  /** When a consumer last claimed messages of this app (0: not since wake-up). */
  #lastClaimAt = 0;
  /** Consecutive failed queue sends: the retry delay doubles with each. */
  #sendFailures = 0;
  /** While the queue keeps refusing, sending waits until then (0: not waiting). */
  #sendRetryAt = 0;
  /**
   * Tasks whose queue message a consumer has taken, until when it may still begin them. Kept in
   * memory only: after an eviction a held message may be sent again, which the state machine
   * shrugs off (a duplicate never runs a task twice).
   */
  readonly #claims = new Map<string, number>();

  /**
   * @param store the app's store (replaced when the app is deleted)
   * @param queue the queue binding
   * @param wakeBy makes sure the object's alarm fires no later than the given time
   * @param admission the limits that say how many task messages may go out
   */
  constructor(store: () => AppStore, queue: () => Queue, wakeBy: (at: number) => Promise<void>, admission: Admission) {
    this.#store = store;
    this.#queue = queue;
    this.#wakeBy = wakeBy;
    this.#admission = admission;
  }

  // ---- inside a group commit -----------------------------------------------------------

  beginGroup(): void {
    this.#windowSlots = undefined;
  }

  /** Whether a new task may have its message sent with this group (a free window slot); takes it. */
  takeSlot(taskId: string): boolean {
    this.#windowSlots ??= DISPATCH_WINDOW - this.#store().tasks.inFlight();
    if (this.#windowSlots <= 0) return false;
    this.#windowSlots--;
    this.#pending.push(taskId);
    return true;
  }

  checkpoint(): () => void {
    const pending = this.#pending.length;
    const windowSlots = this.#windowSlots;
    return () => {
      this.#pending.length = pending;
      this.#windowSlots = windowSlots;
    };
  }

  discard(): void {
    this.#pending = [];
  }

  // ---- after a commit, and from the alarm ---------------------------------------------

  /** Sends the messages of the group's new tasks, then whatever else the outbox holds. */
  async sendCommitted(config: AppConfig): Promise<void> {
    this.#lingering.push(...this.#pending);
    this.#pending = [];
    // Full messages go now, and everything when none went lately; the rest waits a moment for
    // company (the caller does not wait for it).
    const now = Date.now();
    const quiet = now - this.#newSentAt >= DISPATCH_LINGER_MS && this.#lingerTimer === null;
    const full = quiet ? this.#lingering.length : this.#lingering.length - (this.#lingering.length % TASKS_PER_MESSAGE);
    if (full > 0) {
      this.#newSentAt = now;
      await this.#send(config, this.#lingering.splice(0, full), []);
    }
    if (this.#lingering.length > 0 && this.#lingerTimer === null) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = null;
        this.#newSentAt = Date.now();
        void this.#send(config, this.#lingering.splice(0), []);
      }, DISPATCH_LINGER_MS);
    }
    await this.flush(config);
  }

  /**
   * Sends queue messages for due, unsent work: tasks (while the app is active, keeping at
   * most DISPATCH_WINDOW in flight) and notifications (always: a paused app still reports
   * what finished).
   */
  async flush(config: AppConfig): Promise<void> {
    const now = Date.now();
    if (now < this.#sendRetryAt) return; // backing off a failing queue
    const { tasks, notifications: notificationStore } = this.#store();
    const inFlight = tasks.inFlight();
    const room =
      config.state === "Active"
        ? Math.min(BATCH, windowRoom(inFlight), this.#admission.room(config, now, inFlight))
        : 0;
    const taskIds = room > 0 ? tasks.dueUnsent(now, room) : [];
    const notifications = notificationStore.due(now, this.#lostBefore(now), BATCH - taskIds.length);
    if (taskIds.length === 0 && notifications.length === 0) return;
    tasks.markDispatched(taskIds, now);
    notificationStore.markDispatched(notifications, now);
    await this.#send(config, taskIds, notifications);
  }

  /** Messages sent before this instance woke that never led to an attempt and that no consumer holds: presumed lost. */
  forgetLost(now: number): number {
    return this.#store().tasks.forgetStaleDispatches(
      this.#lostBefore(now),
      now,
      (id) => (this.#claims.get(id) ?? 0) > now,
    );
  }

  /**
   * A consumer took these tasks' messages in a batch of `batchSize`: they are not lost while
   * they wait their turn behind slow origins (6 at a time). The hold covers the batch's worst case.
   */
  claim(taskIds: string[], batchSize: number, timeoutSeconds: number, now: number): void {
    this.#lastClaimAt = now;
    const holdMs = Math.ceil(batchSize / CONSUMER_CONCURRENCY) * (timeoutSeconds * 1000 + LEASE_GRACE_MS);
    for (const [id, until] of this.#claims) if (until <= now) this.#claims.delete(id);
    for (const id of taskIds) this.#claims.set(id, now + holdMs);
  }

  /** Messages sent before this time may be lost, 30 s after their send (see REDISPATCH_AFTER_MS). */
  lostCutoff(now: number): number {
    return lostCutoff(now, this.#wokeAt, this.#lastClaimAt);
  }

  /** Messages sent before this time may be lost now. */
  #lostBefore(now: number): number {
    return Math.min(now - REDISPATCH_AFTER_MS, this.lostCutoff(now));
  }

  /**
   * When to look again for lost messages among those this instance sent, which wait while
   * consumers keep claiming: once they may have gone idle (null when idle, or never claimed).
   */
  consumersIdleAt(now: number): number | null {
    const at = this.#lastClaimAt + REDISPATCH_AFTER_MS;
    return this.#lastClaimAt > 0 && at > now ? at : null;
  }

  /** `at`, or later while a failing queue is backed off (sending waits; nothing else does). */
  notBefore(at: number | null): number | null {
    return at === null ? null : Math.max(at, this.#sendRetryAt);
  }

  /**
   * What the alarm needs to know about sending waiting tasks (the in-flight count read once):
   * `blocked` when a full queue window or full concurrency waits for attempts to begin or
   * finish, which send at once (no alarm for it); `notBefore` after a queue backoff, the
   * origin's hold, the circuit's cool-down and the rate.
   */
  sendingWake(config: AppConfig, now: number): { blocked: boolean; notBefore: number } {
    const inFlight = this.#store().tasks.inFlight();
    const blocked =
      windowRoom(inFlight) === 0 ||
      this.#admission.concurrencyFull(config, inFlight) ||
      this.#admission.awaitingProbe(now, inFlight);
    return { blocked, notBefore: Math.max(this.#sendRetryAt, this.#admission.openAt(config, now, inFlight)) };
  }

  /** The app was deleted: what was remembered of it goes too. */
  reset(): void {
    this.#claims.clear();
    if (this.#lingerTimer !== null) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = null;
    this.#lingering = [];
  }

  /**
   * Sends the queue messages of tasks and notifications already marked dispatched. If the
   * queue refuses them the marks are cleared, and sending backs off.
   */
  async #send(config: AppConfig, taskIds: string[], notifications: NotificationRow[]): Promise<void> {
    if (taskIds.length === 0 && notifications.length === 0) return;
    const messages: TaskMessage[] = [];
    // Several tasks per message: a message costs three queue operations whatever it carries.
    for (let i = 0; i < taskIds.length; i += TASKS_PER_MESSAGE) {
      const [id, ...more] = taskIds.slice(i, i + TASKS_PER_MESSAGE);
      messages.push(more.length > 0 ? { app: config.name, id: id!, more } : { app: config.name, id: id! });
    }
    for (const row of notifications) messages.push({ app: config.name, id: row.task_id, notify: row.kind });
    try {
      for (let i = 0; i < messages.length; i += BATCH) {
        const chunk = messages.slice(i, i + BATCH);
        await this.#queue().sendBatch(chunk.map((body) => ({ body, contentType: "json" as const })));
        meters.queue_writes += chunk.length;
      }
    } catch (error) {
      log("error", "queue_send_failed", { app: config.name, messages: messages.length }, error);
      this.#store().tasks.clearDispatched(taskIds);
      this.#store().notifications.clearDispatched(notifications);
      // A queue that keeps refusing is not retried every second: back off, with jitter.
      const delay = Math.min(SEND_RETRY_MAX_MS, SEND_RETRY_MIN_MS * 2 ** this.#sendFailures);
      this.#sendFailures++;
      this.#sendRetryAt = Date.now() + Math.round(delay * (0.5 + Math.random() / 2));
      await this.#wakeBy(this.#sendRetryAt);
      return;
    }
    this.#sendFailures = 0;
    this.#sendRetryAt = 0;
  }
}
