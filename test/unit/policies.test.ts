// Proves the delivery-policy rules as pure functions: which failures are final, how Retry-After
// is read and capped, and how no_retry_statuses is validated.
import { describe, expect, it } from "vitest";
import { applyPatch, defaultConfig } from "../../src/config/app-config";
import {
  CLOSED,
  admitThrough,
  afterAttempt,
  burstOf,
  circuitRoom,
  refill,
  signalOf,
  tokensAt,
} from "../../src/app/limits";
import { isFinalFailure, retryAfterMs } from "../../src/app/state-machine";
import { lostCutoff } from "../../src/app/outbox";

const rules = { allowPrivateOrigins: false, gateway: { appHostSuffix: ".async.example.com", controlHosts: [] } };
const base = defaultConfig("a", "https://a.example.com");

describe("isFinalFailure", () => {
  const config = applyPatch(base, { retry: { no_retry_statuses: [404, 410] } }, rules);
  it.each([
    [404, {}, true],
    [410, {}, true],
    [500, {}, false],
    [500, { "Asyncgate-No-Retry": ["true"] }, true],
    [503, { "asyncgate-no-retry": [" TRUE "] }, true],
    [500, { "Asyncgate-No-Retry": ["false"] }, false],
  ])("status %i with %j → %s", (status, header, expected) => {
    expect(isFinalFailure(config, status, header as Record<string, string[]>)).toBe(expected);
  });
  it("is Cloud Tasks' semantics by default: everything is retried", () => {
    expect(isFinalFailure(base, 404, {})).toBe(false);
  });
});

describe("retryAfterMs", () => {
  const now = Date.UTC(2026, 10, 26, 8, 0, 0);
  it.each([
    [429, { "Retry-After": ["2"] }, 2000],
    [503, { "retry-after": ["120"] }, 120_000],
    [429, { "Retry-After": [new Date(now + 30_000).toUTCString()] }, 30_000],
    [429, { "Retry-After": [new Date(now - 30_000).toUTCString()] }, 0],
    [429, { "Retry-After": ["999999"] }, 3_600_000],
    [500, { "Retry-After": ["2"] }, null],
    [429, {}, null],
    [429, { "Retry-After": ["soon"] }, null],
  ])("%i %j → %s", (status, header, expected) => {
    expect(retryAfterMs(status, header as Record<string, string[]>, now, 3_600_000)).toBe(expected);
  });
});

describe("no_retry_statuses", () => {
  it("accepts non-2xx statuses, sorted and without repeats", () => {
    expect(applyPatch(base, { retry: { no_retry_statuses: [410, 404, 404] } }, rules).retry.no_retry_statuses).toEqual([
      404, 410,
    ]);
  });
  it.each([[[200]], [[99]], [[600]], [["404"]], ["404"], [Array.from({ length: 51 }, (_, i) => 400 + i)]])(
    "refuses %j",
    (value) => {
      expect(() => applyPatch(base, { retry: { no_retry_statuses: value } }, rules)).toThrow(/no_retry_statuses/);
    },
  );
});

describe("token bucket", () => {
  const limits = { max_dispatches_per_second: 2, max_burst_size: 1, max_concurrent_dispatches: null };
  it("starts full, refills at the rate, never beyond the burst", () => {
    expect(refill(null, limits, 1000)).toEqual({ tokens: 1, atMs: 1000 });
    expect(refill({ tokens: 0, atMs: 1000 }, limits, 1250).tokens).toBeCloseTo(0.5);
    expect(refill({ tokens: 0, atMs: 1000 }, limits, 9000).tokens).toBe(1);
  });
  it("says when the next token comes", () => {
    expect(tokensAt({ tokens: 0, atMs: 1000 }, limits, 1)).toBe(1500);
    expect(tokensAt({ tokens: 0.5, atMs: 1000 }, limits, 1)).toBe(1250);
    expect(tokensAt({ tokens: 1, atMs: 1000 }, limits, 1)).toBe(1000);
  });
  it("defaults the burst to a second's worth of the rate", () => {
    expect(burstOf({ max_dispatches_per_second: 7.5, max_burst_size: null, max_concurrent_dispatches: null })).toBe(8);
  });
});

describe("circuit breaker", () => {
  const breaker = { failure_threshold: 2, cool_down: 10 };
  it("opens after the threshold of consecutive failures; 4xx and successes do not count", () => {
    let circuit = afterAttempt(CLOSED, breaker, "failure", "HTTP 503", 0);
    expect(circuit).toMatchObject({ state: "closed", failures: 1 });
    expect(afterAttempt(circuit, breaker, "success", "", 0)).toEqual(CLOSED);
    circuit = afterAttempt(afterAttempt(circuit, breaker, "neutral", "HTTP 404", 0), breaker, "failure", "timeout", 5);
    expect(circuit).toMatchObject({ state: "open", untilMs: 10_005 });
    expect(circuit.reason).toContain("timeout");
  });
  it("lets one probe through after the cool-down; its success closes, its failure reopens", () => {
    const open = { ...CLOSED, state: "open" as const, untilMs: 10_000, reason: "x" };
    expect(admitThrough(open, "a", 9_999).admitted).toBe(false);
    expect(circuitRoom(open, 9_999)).toBe(0);
    expect(circuitRoom(open, 10_000)).toBe(1);
    const probing = admitThrough(open, "a", 10_000);
    expect(probing).toMatchObject({ admitted: true, circuit: { state: "half-open", probe: "a" } });
    expect(admitThrough(probing.circuit, "b", 10_001).admitted).toBe(false);
    expect(afterAttempt(probing.circuit, breaker, "success", "", 10_100)).toEqual(CLOSED);
    expect(afterAttempt(probing.circuit, breaker, "failure", "HTTP 500", 10_100)).toMatchObject({
      state: "open",
      untilMs: 20_100,
    });
  });
  it("never opens with a threshold of 0, and then counts nothing", () => {
    let circuit = CLOSED;
    for (let i = 0; i < 100; i++)
      circuit = afterAttempt(circuit, { failure_threshold: 0, cool_down: 1 }, "failure", "x", i);
    expect(circuit.state).toBe("closed");
    expect(circuit).toBe(CLOSED);
  });
  it.each([
    [{ status: 200 }, "success"],
    [{ status: 404 }, "neutral"],
    [{ status: 429 }, "neutral"],
    [{ status: 503 }, "failure"],
    [{ error: "timeout" }, "failure"],
  ])("%j is a %s", (outcome, expected) => expect(signalOf(outcome)).toBe(expected));
});

describe("lost queue messages (outbox lostCutoff)", () => {
  const wokeAt = 1_000_000;
  it.each([
    ["consumers claimed 10 s ago: only what the earlier instance sent", wokeAt + 60_000, wokeAt + 50_000, wokeAt],
    ["consumers idle for 30 s: everything sent", wokeAt + 60_000, wokeAt + 30_000, wokeAt + 60_000],
    ["no claim since the wake-up, a minute on: everything sent", wokeAt + 60_000, 0, wokeAt + 60_000],
  ])("%s", (_case, now, lastClaimAt, cutoff) => {
    expect(lostCutoff(now, wokeAt, lastClaimAt)).toBe(cutoff);
  });
});
