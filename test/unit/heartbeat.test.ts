// Proves the heartbeat deadline rules: latest sign of life wins, > 15 s closes, untrusted timestamps never close early.
import { describe, expect, it } from "vitest";
import { HEARTBEAT_TIMEOUT_MS, checkAt, isSilent, lastSignOfLife } from "../../src/app/heartbeat";

const t0 = 1_800_000_000_000;
const attachment = { acceptedAt: t0, lastMessageAt: t0, lastAutoResponseAt: 0 };

describe("heartbeat deadlines", () => {
  it("takes the latest of accept, message and auto-response times", () => {
    expect(lastSignOfLife(attachment, null)).toBe(t0);
    expect(lastSignOfLife({ ...attachment, lastMessageAt: t0 + 5 }, t0 + 3)).toBe(t0 + 5);
    expect(lastSignOfLife(attachment, t0 + 9_000)).toBe(t0 + 9_000);
  });
  it("a stale or missing auto-response timestamp cannot move the deadline earlier (workerd#2025)", () => {
    const seen = { ...attachment, lastAutoResponseAt: t0 + 10_000 };
    expect(lastSignOfLife(seen, t0 - 60_000)).toBe(t0 + 10_000);
    expect(lastSignOfLife(seen, null)).toBe(t0 + 10_000);
  });
  it("closes only after more than 15 s of silence", () => {
    expect(isSilent(t0, t0 + HEARTBEAT_TIMEOUT_MS)).toBe(false);
    expect(isSilent(t0, t0 + HEARTBEAT_TIMEOUT_MS + 1)).toBe(true);
  });
  it("checks again just after 15 s, well before 17 s", () => {
    expect(checkAt(t0) - t0).toBeGreaterThan(HEARTBEAT_TIMEOUT_MS);
    expect(checkAt(t0) - t0).toBeLessThan(17_000 - 1_000);
  });
});
