// Proves the retry arithmetic matches Cloud Tasks' model: doubling, linear growth, caps, limits.
import { describe, expect, it } from "vitest";
import { backoffSeconds, jitteredBackoffSeconds, mayRetry } from "../../src/config/retry-policy";
import { defaultConfig } from "../../src/config/app-config";
import type { RetryPolicy } from "../../src/config/retry-policy";

const policy = (overrides: Partial<RetryPolicy>): RetryPolicy => ({
  ...defaultConfig("a", "https://x.example").retry,
  ...overrides,
});

describe("backoffSeconds", () => {
  it("follows Cloud Tasks' documented example (min 10, max 300, doublings 3)", () => {
    const p = policy({ min_backoff: 10, max_backoff: 300, max_doublings: 3 });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((retry) => backoffSeconds(p, retry))).toEqual([
      10, 20, 40, 80, 160, 240, 300, 300,
    ]);
  });
  it.each([
    [policy({}), 1, 1],
    [policy({}), 2, 2],
    [policy({}), 13, 3600],
    [policy({ max_doublings: 0, min_backoff: 5, max_backoff: 100 }), 4, 20],
    [policy({ min_backoff: 0.5, max_backoff: 0.5 }), 9, 0.5],
  ])("policy %# retry %d waits %d s", (p, retry, expected) => {
    expect(backoffSeconds(p, retry)).toBe(expected);
  });
});

describe("jitteredBackoffSeconds", () => {
  const p = policy({ min_backoff: 2, max_backoff: 60 });
  it("spreads the wait over [wait/2, wait]", () => {
    expect(jitteredBackoffSeconds(p, 4, () => 0)).toBe(8);
    expect(jitteredBackoffSeconds(p, 4, () => 0.999999)).toBeCloseTo(16, 3);
  });
  it("never waits less than min_backoff", () => {
    expect(jitteredBackoffSeconds(p, 1, () => 0)).toBe(2);
  });
});

describe("mayRetry", () => {
  const t0 = 1_000_000;
  it("stops at max_attempts when no duration is set", () => {
    expect(mayRetry(policy({ max_attempts: 3 }), 2, t0, t0)).toBe(true);
    expect(mayRetry(policy({ max_attempts: 3 }), 3, t0, t0)).toBe(false);
  });
  it("with both limits, stops only when both are reached", () => {
    const p = policy({ max_attempts: 2, max_retry_duration: 10 });
    expect(mayRetry(p, 5, t0, t0 + 5_000)).toBe(true);
    expect(mayRetry(p, 1, t0, t0 + 20_000)).toBe(true);
    expect(mayRetry(p, 2, t0, t0 + 10_000)).toBe(false);
  });
  it("unlimited attempts stop on duration alone", () => {
    const p = policy({ max_attempts: -1, max_retry_duration: 60 });
    expect(mayRetry(p, 1000, t0, t0 + 59_000)).toBe(true);
    expect(mayRetry(p, 1, t0, t0 + 60_000)).toBe(false);
  });
});
