/**
 * Delivery limits as pure functions of "now": Cloud Tasks' token bucket (rate and burst) and
 * a circuit breaker (closed → open after repeated failures → half-open with one probe →
 * closed on its success). The dispatcher keeps their state in SQLite so they hold across
 * restarts; the rules live here, tested with tables.
 */
import type { CircuitBreaker, RateLimits } from "../config/app-config";

export interface Bucket {
  tokens: number;
  /** When `tokens` was last computed, unix ms. */
  atMs: number;
}

/** The bucket's size: the configured burst, or one second's worth of the rate. */
export const burstOf = (limits: RateLimits): number =>
  limits.max_burst_size ?? Math.max(1, Math.ceil(limits.max_dispatches_per_second ?? 1));

/** The bucket refilled up to `nowMs` (a new bucket starts full). */
export function refill(bucket: Bucket | null, limits: RateLimits, nowMs: number): Bucket {
  const rate = limits.max_dispatches_per_second;
  const burst = burstOf(limits);
  if (rate === null || bucket === null) return { tokens: burst, atMs: nowMs };
  const tokens = Math.min(burst, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * rate) / 1000);
  return { tokens, atMs: nowMs };
}

/** When the bucket holds `wanted` tokens (now, if it already does). */
export function tokensAt(bucket: Bucket, limits: RateLimits, wanted: number): number {
  const rate = limits.max_dispatches_per_second;
  if (rate === null || bucket.tokens >= wanted) return bucket.atMs;
  return bucket.atMs + Math.ceil(((wanted - bucket.tokens) * 1000) / rate);
}

export type CircuitState = "closed" | "open" | "half-open";

export interface Circuit {
  state: CircuitState;
  /** Consecutive failed attempts while closed. */
  failures: number;
  /** While open: when the probe may go, unix ms. */
  untilMs: number;
  reason: string | null;
  /** While half-open: the task whose attempt is the probe. */
  probe: string | null;
}

export const CLOSED: Circuit = { state: "closed", failures: 0, untilMs: 0, reason: null, probe: null };

/** What an attempt's outcome tells the breaker: the origin worked, failed, or said nothing about itself (4xx). */
export type AttemptSignal = "success" | "failure" | "neutral";

export function signalOf(outcome: { status: number } | { error: string }): AttemptSignal {
  if ("error" in outcome) return "failure";
  if (outcome.status >= 200 && outcome.status <= 299) return "success";
  return outcome.status >= 500 ? "failure" : "neutral";
}

/** The circuit after an attempt of `taskId` ended with `signal`. */
export function afterAttempt(
  circuit: Circuit,
  breaker: CircuitBreaker,
  signal: AttemptSignal,
  detail: string,
  nowMs: number,
): Circuit {
  // Off: nothing to count (and nothing to write), unless a circuit opened before it was turned off.
  if (breaker.failure_threshold === 0 && circuit.state === "closed") return circuit;
  if (signal === "success") return CLOSED;
  if (signal === "neutral") return circuit.state === "half-open" ? CLOSED : circuit; // the origin answered
  const open = (reason: string): Circuit => ({
    state: "open",
    failures: 0,
    untilMs: nowMs + breaker.cool_down * 1000,
    reason,
    probe: null,
  });
  if (circuit.state === "half-open") return open(`probe failed: ${detail}`);
  if (circuit.state === "open") return circuit;
  const failures = circuit.failures + 1;
  if (breaker.failure_threshold > 0 && failures >= breaker.failure_threshold)
    return open(`${failures} consecutive failures, last: ${detail}`);
  return { ...circuit, failures };
}

/** Whether an attempt of `taskId` may start now, and the circuit after that decision. */
export function admitThrough(circuit: Circuit, taskId: string, nowMs: number): { admitted: boolean; circuit: Circuit } {
  if (circuit.state === "closed") return { admitted: true, circuit };
  if (circuit.state === "open") {
    if (nowMs < circuit.untilMs) return { admitted: false, circuit };
    return { admitted: true, circuit: { ...circuit, state: "half-open", probe: taskId } };
  }
  return { admitted: circuit.probe === taskId, circuit };
}

/** How many task messages the circuit lets out now (null: no limit). */
export function circuitRoom(circuit: Circuit, nowMs: number): number | null {
  if (circuit.state === "closed") return null;
  if (circuit.state === "open") return nowMs < circuit.untilMs ? 0 : 1;
  return 0; // half-open: the probe is out
}
