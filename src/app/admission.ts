/**
 * Admission: whether an attempt of the app may start now, and how many may. It keeps the
 * origin's hold (Retry-After), the rate limit's token bucket and the circuit breaker, in SQLite
 * (they hold across restarts), and counts running attempts against `max_concurrent_dispatches`.
 * Asked inside `begin`, so the limits hold across any number of consumers; the outbox asks it
 * how many messages to let out, so refused messages do not churn through the queue.
 */
import type { AppConfig } from "../config/app-config";
import type { DeliveryState } from "./contract";
import {
  CLOSED,
  admitThrough,
  afterAttempt,
  circuitRoom,
  refill,
  tokensAt,
  type AttemptSignal,
  type Bucket,
  type Circuit,
} from "./limits";
import { StoredValue, type AppStore } from "./store";

export class Admission {
  readonly #store: () => AppStore;
  /** Until when the origin asked for no attempts (Retry-After). */
  readonly #holdUntil: StoredValue<number>;
  /** The rate limit's token bucket (null: none taken yet). */
  readonly #bucket: StoredValue<Bucket | null>;
  /** The circuit breaker. */
  readonly #circuit: StoredValue<Circuit>;

  /** @param store the app's store (replaced when the app is deleted) */
  constructor(store: () => AppStore) {
    this.#store = store;
    const meta = () => store().meta;
    this.#holdUntil = new StoredValue(meta, "hold_until", 0);
    this.#bucket = new StoredValue<Bucket | null>(meta, "rate_bucket", null);
    this.#circuit = new StoredValue(meta, "circuit", CLOSED);
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
  }

  /**
   * Whether an attempt of `taskId` may start now: the origin's hold has passed, fewer than
   * `max_concurrent_dispatches` run, the circuit lets it through (or it is the probe), and the
   * rate's bucket has a token (taken). Called inside `begin`, so it holds across any number of
   * consumers; a task refused here is sent again when the limits allow.
   */
  admit(config: AppConfig, taskId: string, now: number): boolean {
    if (now < this.heldUntil()) return false;
    const limits = config.rate_limits;
    if (
      limits.max_concurrent_dispatches !== null &&
      this.#store().tasks.runningCount() >= limits.max_concurrent_dispatches
    )
      return false;
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
  delivery(now: number): DeliveryState {
    const held = this.heldUntil();
    if (now < held) return { state: "held", reason: "the origin answered Retry-After", until: Math.ceil(held / 1000) };
    const circuit = this.circuit();
    return {
      state: circuit.state,
      reason: circuit.reason,
      until: circuit.state === "open" ? Math.ceil(circuit.untilMs / 1000) : null,
    };
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

  /**
   * Whether sending waits for the circuit's probe: half-open (the probe runs; its end sends
   * again) or open past its cool-down with the probe's message out (its begin sends again).
   * Neither needs the alarm, which would otherwise fire again at once until the probe came.
   */
  awaitingProbe(now: number, inFlight: number): boolean {
    const circuit = this.circuit();
    return circuit.state === "half-open" || (circuit.state === "open" && now >= circuit.untilMs && inFlight > 0);
  }

  /**
   * Task `taskId` ended without its attempt ending (expired by retention while running): were
   * it the circuit's probe, the circuit would wait for it forever. It opens again, due at once,
   * so the next task is the probe.
   */
  release(taskId: string, now: number): void {
    const circuit = this.circuit();
    if (circuit.state === "half-open" && circuit.probe === taskId) {
      this.#circuit.set({ ...circuit, state: "open", untilMs: now, probe: null });
    }
  }

  /** Whether `max_concurrent_dispatches` is taken up by running attempts and messages in flight. */
  concurrencyFull(config: AppConfig, inFlight: number): boolean {
    const maxConcurrent = config.rate_limits.max_concurrent_dispatches;
    return maxConcurrent !== null && this.#store().tasks.runningCount() + inFlight >= maxConcurrent;
  }

  /** How many more task messages the limits let out now (messages in flight will each take their share). */
  room(config: AppConfig, now: number, inFlight: number): number {
    if (now < this.heldUntil()) return 0;
    let room = Infinity;
    const limits = config.rate_limits;
    if (limits.max_concurrent_dispatches !== null) {
      room = Math.min(room, limits.max_concurrent_dispatches - this.#store().tasks.runningCount() - inFlight);
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
  openAt(config: AppConfig, now: number, inFlight: number): number {
    let at = this.heldUntil();
    const circuit = this.circuit();
    if (circuit.state === "open") at = Math.max(at, circuit.untilMs);
    const limits = config.rate_limits;
    if (limits.max_dispatches_per_second !== null) {
      at = Math.max(at, tokensAt(refill(this.#bucket.get(), limits, now), limits, inFlight + 1));
    }
    return at;
  }
}
