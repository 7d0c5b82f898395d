// Structured logs: one JSON object per line with level, event and fields; an error's name and
// message as a field, its stack only at level error.
import { afterEach, describe, expect, it, vi } from "vitest";
import { log } from "../../src/shared/log";

afterEach(() => vi.restoreAllMocks());

describe("log", () => {
  it("writes one JSON object per line, by level", () => {
    const info = vi.spyOn(console, "log").mockImplementation(() => {});
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    log("info", "attempt", { app: "shop", task: "t1", attempt: 2, status: 200, duration_ms: 31, outcome: "success" });
    log("warn", "attempt", { app: "shop", task: "t2", attempt: 1, status: null, error: "timeout" });
    expect(JSON.parse(String(info.mock.calls[0]![0]))).toEqual({
      level: "info",
      event: "attempt",
      app: "shop",
      task: "t1",
      attempt: 2,
      status: 200,
      duration_ms: 31,
      outcome: "success",
    });
    expect(JSON.parse(String(warn.mock.calls[0]![0]))).toMatchObject({
      level: "warn",
      task: "t2",
      status: null,
      error: "timeout",
    });
  });

  it("an error becomes name and message; only errors carry a stack", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    log("error", "alarm_failed", { app: "shop" }, new TypeError("boom"));
    log("warn", "claim_failed", { app: "shop" }, new Error("later"));
    const failed = JSON.parse(String(error.mock.calls[0]![0])) as Record<string, string>;
    expect(failed).toMatchObject({ level: "error", event: "alarm_failed", app: "shop", error: "TypeError: boom" });
    expect(failed["stack"]).toContain("boom");
    expect(JSON.parse(String(warn.mock.calls[0]![0]))).toEqual({
      level: "warn",
      event: "claim_failed",
      app: "shop",
      error: "Error: later",
    });
  });
});
