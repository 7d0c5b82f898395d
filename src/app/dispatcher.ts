/**
 * The app's dispatcher: what goes from its object to the Cloudflare Queue, and when. It keeps
 * the queue window (at most DISPATCH_WINDOW task messages in flight: the object holds the rest
 * of the backlog), sends the outbox (tasks, then notifications), backs off a queue that keeps
 * refusing, and remembers which messages consumers hold so they are not taken for lost.
 */
import type { AppConfig } from "./config";
import { CLOSED, admitThrough, afterAttempt, circuitRoom, refill, tokensAt, type AttemptSignal, type Bucket, type Circuit, type CircuitState } from "./limits";
import type { NotificationRow, TaskStore } from "./task-store";
import { TASKS_PER_MESSAGE, type TaskMessage } from "../shared/types";
import { log } from "../shared/log";
import { meters } from "../shared/meters";

/** Queue messages in flight per app: the object keeps the backlog, the queue a bounded window. */
export const DISPATCH_WINDOW = 500;
/**
 * A sent message whose task has not begun after this long, and that no consumer has claimed,
 * is presumed lost and sent again (local Queues lose theirs when `wrangler dev` restarts). A
 * message merely slow to arrive is then sent twice, which the state machine shrugs off.
 */
export const REDISPATCH_AFTER_MS = 30_000;
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
 * Tasks the queue window takes now, `inFlight` being out. A nearly full window waits for a
 * message's worth of room (the begins that free it send again): refilled a slot at a time while
 * draining, it would go out in one-task messages, each three billed queue operations.
 */
export function windowRoom(inFlight: number): number {
  const room = DISPATCH_WINDOW - inFlight;
  return room >= TASKS_PER_MESSAGE || inFlight === 0 ? Math.max(0, room) : 0;
}

export class Dispatcher {
  readonly #store: () => TaskStore;
  readonly #queue: () => Queue;
  readonly #wakeBy: (at: number) => Promise<void>;
  /** New tasks marked dispatched in the current group, sent once it is committed. */
  #pending: string[] = [];
  /** Free queue-window slots in the current group; undefined until a submission counts them. */
  #windowSlots: number | undefined = undefined;
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
  /** Until when the origin asked for no attempts (Retry-After). */
  readonly #holdUntil: StoredValue<number>;
  /** The rate limit's token bucket (null: none taken yet). */
  readonly #bucket: StoredValue<Bucket | null>;
  /** The circuit breaker. */
  readonly #circuit: StoredValue<Circuit>;

  /**
   * @param store the app's task store (replaced when the app is deleted)
   * @param queue the queue binding
   * @param wakeBy makes sure the object's alarm fires no later than the given time
   */
  constructor(store: () => TaskStore, queue: () => Queue, wakeBy: (at: number) => Promise<void>) {
    this.#store = store;
    this.#queue = queue;
    this.#wakeBy = wakeBy;
    this.#holdUntil = new StoredValue(store, "hold_until", 0);
    this.#bucket = new StoredValue<Bucket | null>(store, "rate_bucket", null);
    this.#circuit = new StoredValue(store, "circuit", CLOSED);
  }

  // ---- inside a group commit -----------------------------------------------------------

  beginGroup(): void {
    this.#windowSlots = undefined;
  }

  /** Whether a new task may have its message sent with this group (a free window slot); takes it. */
  takeSlot(taskId: string): boolean {
    this.#windowSlots ??= DISPATCH_WINDOW - this.#store().inFlight();
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
    const pending = this.#pending;
    this.#pending = [];
    await this.#send(config, pending, []);
    await this.flushOutbox(config);
  }

  /**
   * Sends queue messages for due, unsent work: tasks (while the app is active, keeping at
   * most DISPATCH_WINDOW in flight) and notifications (always: a paused app still reports
   * what finished).
   */
  async flushOutbox(config: AppConfig): Promise<void> {
    const now = Date.now();
    if (now < this.#sendRetryAt) return; // backing off a failing queue
    const store = this.#store();
    const inFlight = store.inFlight();
    const room = config.state === "Active" ? Math.min(BATCH, windowRoom(inFlight), this.#limitRoom(config, now, inFlight)) : 0;
    const taskIds = room > 0 ? store.dueUnsent(now, room) : [];
    const notifications = store.dueNotifications(now, now - REDISPATCH_AFTER_MS, BATCH - taskIds.length);
    if (taskIds.length === 0 && notifications.length === 0) return;
    store.markDispatched(taskIds, now);
    store.markNotificationsDispatched(notifications, now);
    await this.#send(config, taskIds, notifications);
  }

  /** Messages that never led to an attempt and that no consumer holds: presumed lost. */
  forgetLost(now: number): number {
    return this.#store().forgetStaleDispatches(now - REDISPATCH_AFTER_MS, now, (id) => (this.#claims.get(id) ?? 0) > now);
  }

  /**
   * A consumer took these tasks' messages in a batch of `batchSize`: they are not lost while
   * they wait their turn behind slow origins (6 at a time). The hold covers the batch's worst case.
   */
  claim(taskIds: string[], batchSize: number, timeoutSeconds: number, now: number): void {
    const holdMs = Math.ceil(batchSize / CONSUMER_CONCURRENCY) * (timeoutSeconds * 1000 + LEASE_GRACE_MS);
    for (const [id, until] of this.#claims) if (until <= now) this.#claims.delete(id);
    for (const id of taskIds) this.#claims.set(id, now + holdMs);
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
    const inFlight = this.#store().inFlight();
    const maxConcurrent = config.rate_limits.max_concurrent_dispatches;
    const blocked = windowRoom(inFlight) === 0 || (maxConcurrent !== null && this.#store().runningCount() + inFlight >= maxConcurrent);
    return { blocked, notBefore: Math.max(this.#sendRetryAt, this.#limitsOpenAt(config, now, inFlight)) };
  }

  /**
   * The origin answered 429/503 with Retry-After: no attempt of this app starts before `untilMs`
   * (the whole origin is busy, not one task). Kept in SQLite, so it holds across restarts.
   */
  hold(untilMs: number): void {
    if (untilMs > this.heldUntil()) this.#holdUntil.set(untilMs);
  }

  /** Until when the app's deliveries are held (0 or a past time: not held). */
  heldUntil(): number {
    return this.#holdUntil.get();
  }

  /** The app was deleted: what was remembered of it goes too. */
  reset(): void {
    for (const value of [this.#holdUntil, this.#bucket, this.#circuit]) value.forget();
    this.#claims.clear();
  }

  // ---- limits: hold, concurrency, circuit, rate --------------------------------------

  /**
   * Whether an attempt of `taskId` may start now: the origin's hold has passed, fewer than
   * `max_concurrent_dispatches` run, the circuit lets it through (or it is the probe), and the
   * rate's bucket has a token (taken). Called inside `begin`, so it holds across any number of
   * consumers; a task refused here is sent again when the limits allow.
   */
  admit(config: AppConfig, taskId: string, now: number): boolean {
    if (now < this.heldUntil()) return false;
    const limits = config.rate_limits;
    if (limits.max_concurrent_dispatches !== null && this.#store().runningCount() >= limits.max_concurrent_dispatches) return false;
    const circuit = this.circuit();
    const gate = admitThrough(circuit, taskId, now);
    if (!gate.admitted) return false;
    if (limits.max_dispatches_per_second !== null) {
      const bucket = refill(this.#bucket.get(), limits, now);
      if (bucket.tokens < 1) return false;
      this.#bucket.set({ tokens: bucket.tokens - 1, atMs: now });
    }
    if (gate.circuit !== circuit) this.#circuit.set(gate.circuit);
    return true;
  }

  /** An attempt ended: the circuit breaker learns whether the origin works. */
  attemptEnded(config: AppConfig, signal: AttemptSignal, detail: string, now: number): void {
    const circuit = this.circuit();
    const next = afterAttempt(circuit, config.circuit_breaker, signal, detail, now);
    if (next !== circuit) this.#circuit.set(next);
  }

  circuit(): Circuit {
    return this.#circuit.get();
  }

  /** The app's delivery state for its record and stats. */
  delivery(now: number): { state: CircuitState | "held"; reason: string | null; until: number | null } {
    const held = this.heldUntil();
    if (now < held) return { state: "held", reason: "the origin answered Retry-After", until: Math.ceil(held / 1000) };
    const circuit = this.circuit();
    return { state: circuit.state, reason: circuit.reason, until: circuit.state === "open" ? Math.ceil(circuit.untilMs / 1000) : null };
  }

  /** Whether new tasks wait for the outbox (which applies the limits) instead of going out with their commit. */
  limited(config: AppConfig, now: number): boolean {
    const limits = config.rate_limits;
    return (
      now < this.heldUntil() ||
      limits.max_dispatches_per_second !== null ||
      limits.max_concurrent_dispatches !== null ||
      this.circuit().state !== "closed"
    );
  }

  /** How many more task messages the limits let out now (messages in flight will each take their share). */
  #limitRoom(config: AppConfig, now: number, inFlight: number): number {
    if (now < this.heldUntil()) return 0;
    let room = Infinity;
    const limits = config.rate_limits;
    if (limits.max_concurrent_dispatches !== null) {
      room = Math.min(room, limits.max_concurrent_dispatches - this.#store().runningCount() - inFlight);
    }
    if (limits.max_dispatches_per_second !== null) {
      room = Math.min(room, Math.floor(refill(this.#bucket.get(), limits, now).tokens) - inFlight);
    }
    const circuit = circuitRoom(this.circuit(), now);
    if (circuit !== null) room = Math.min(room, circuit - inFlight);
    return Math.max(0, room);
  }

  /**
   * When waiting tasks can next be sent, as far as the hold, the circuit and the rate say
   * (concurrency frees up when an attempt finishes, which sends at once: no alarm for it).
   */
  #limitsOpenAt(config: AppConfig, now: number, inFlight: number): number {
    let at = this.heldUntil();
    const circuit = this.circuit();
    if (circuit.state === "open") at = Math.max(at, circuit.untilMs);
    const limits = config.rate_limits;
    if (limits.max_dispatches_per_second !== null) {
      at = Math.max(at, tokensAt(refill(this.#bucket.get(), limits, now), limits, inFlight + 1));
    }
    return at;
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
      this.#store().clearDispatched(taskIds);
      this.#store().clearNotificationsDispatched(notifications);
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

/**
 * A value of the app's kept in its object's SQLite (the meta table, as JSON) so it holds
 * across restarts, and in memory so the hot path reads it once per wake-up.
 */
class StoredValue<T> {
  readonly #store: () => TaskStore;
  readonly #key: string;
  readonly #fallback: T;
  #value: { current: T } | null = null;

  constructor(store: () => TaskStore, key: string, fallback: T) {
    this.#store = store;
    this.#key = key;
    this.#fallback = fallback;
  }

  get(): T {
    if (this.#value === null) {
      const stored = this.#store().getMeta(this.#key);
      this.#value = { current: stored === null ? this.#fallback : (JSON.parse(stored) as T) };
    }
    return this.#value.current;
  }

  set(value: T): void {
    this.#value = { current: value };
    this.#store().setMeta(this.#key, JSON.stringify(value));
  }

  /** The app was deleted: read afresh next time. */
  forget(): void {
    this.#value = null;
  }
}
