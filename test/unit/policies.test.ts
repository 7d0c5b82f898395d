// Proves the delivery-policy rules as pure functions: which failures are final, how Retry-After
// is read and capped, and how no_retry_statuses is validated.
import { describe, expect, it } from "vitest";
import { applyPatch, defaultConfig } from "../../src/app/config";
import { isFinalFailure, retryAfterMs } from "../../src/app/state-machine";

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
    expect(applyPatch(base, { retry: { no_retry_statuses: [410, 404, 404] } }, rules).retry.no_retry_statuses).toEqual([404, 410]);
  });
  it.each([[[200]], [[99]], [[600]], [["404"]], ["404"], [Array.from({ length: 51 }, (_, i) => 400 + i)]])("refuses %j", (value) => {
    expect(() => applyPatch(base, { retry: { no_retry_statuses: value } }, rules)).toThrow(/no_retry_statuses/);
  });
});
