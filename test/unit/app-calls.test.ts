// The consumer's batching of object calls (src/delivery/app-calls.ts), against a recording fake:
// which items go in which RPC, and when.
import { describe, expect, it, vi } from "vitest";
import { BatchedCalls, FINISH_BATCH, FINISH_WAIT_MS, NotStored, type BatchTarget } from "../../src/delivery/app-calls";
import type {
  AttemptReport,
  AttemptResult,
  BeginResult,
  NotificationRef,
  NotificationReport,
} from "../../src/shared/types";

const ok: AttemptResult = { kind: "response", status: 200, header: {}, body: new Uint8Array(10) };

function recorder(options: { notStored?: string[] } = {}) {
  const calls: { method: string; items: unknown[] }[] = [];
  const target: BatchTarget = {
    beginMany: async (ids) => (
      calls.push({ method: "beginMany", items: ids }),
      ids.map((taskId, i): BeginResult => ({ run: true, delivery: { taskId, attempt: i + 1 } as never }))
    ),
    finishMany: async (reports: AttemptReport[]) => (
      calls.push({ method: "finishMany", items: reports.map((r) => r.taskId) }),
      reports.map((r) => (options.notStored?.includes(r.taskId) ? null : { applied: true, state: 10 as const }))
    ),
    beginNotifications: async (refs: NotificationRef[]) => (
      calls.push({ method: "beginNotifications", items: refs.map((r) => r.taskId) }),
      refs.map((r) => ({ taskId: r.taskId, attempt: 1 }) as never)
    ),
    finishNotifications: async (reports: NotificationReport[]) => (
      calls.push({ method: "finishNotifications", items: reports.map((r) => r.taskId) }),
      reports.map(() => true)
    ),
  };
  return { calls, target };
}

describe("BatchedCalls", () => {
  it("sends the begins asked in one turn as one beginMany", async () => {
    const { calls, target } = recorder();
    const batched = new BatchedCalls(() => target);
    const begun = await Promise.all(["a", "b", "c"].map((id) => batched.begin(id)));
    expect(begun.every((result) => result.run)).toBe(true);
    await batched.begin("d");
    expect(calls).toEqual([
      { method: "beginMany", items: ["a", "b", "c"] },
      { method: "beginMany", items: ["d"] },
    ]);
  });

  it("holds finishes while other attempts run, sends them once all reported; a lone finish goes at once", async () => {
    const { calls, target } = recorder();
    const batched = new BatchedCalls(() => target);
    await Promise.all(["a", "b", "c"].map((id) => batched.begin(id)));
    const first = batched.finish("a", 1, ok);
    const second = batched.finish("b", 1, ok);
    await Promise.resolve();
    expect(calls.filter((call) => call.method === "finishMany")).toEqual([]);
    const third = batched.finish("c", 1, ok); // the last one running: all go
    await Promise.all([first, second, third]);
    expect(calls.filter((call) => call.method === "finishMany")).toEqual([
      { method: "finishMany", items: ["a", "b", "c"] },
    ]);
    await batched.begin("d");
    await batched.finish("d", 1, ok);
    expect(calls.at(-1)).toEqual({ method: "finishMany", items: ["d"] });
  });

  it(`waits at most ${FINISH_WAIT_MS} ms, and sends at ${FINISH_BATCH} results`, async () => {
    vi.useFakeTimers();
    try {
      const { calls, target } = recorder();
      const batched = new BatchedCalls(() => target);
      const ids = Array.from({ length: FINISH_BATCH + 2 }, (_, i) => `t${i}`);
      const begun = Promise.all(ids.map((id) => batched.begin(id)));
      await vi.advanceTimersByTimeAsync(0);
      await begun;
      // One result while the rest still run: held, then sent when the wait ends.
      const held = batched.finish("t0", 1, ok);
      await vi.advanceTimersByTimeAsync(FINISH_WAIT_MS - 1);
      expect(calls.filter((call) => call.method === "finishMany")).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      await held;
      expect(calls.filter((call) => call.method === "finishMany")).toEqual([{ method: "finishMany", items: ["t0"] }]);
      // FINISH_BATCH results at once go without waiting.
      const many = ids.slice(1, FINISH_BATCH + 1).map((id) => batched.finish(id, 1, ok));
      await Promise.all(many);
      expect(calls.filter((call) => call.method === "finishMany").at(-1)!.items.length).toBe(FINISH_BATCH);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a finish the object could not store rejects alone with NotStored", async () => {
    const { target } = recorder({ notStored: ["b"] });
    const batched = new BatchedCalls(() => target);
    await Promise.all(["a", "b"].map((id) => batched.begin(id)));
    const results = await Promise.allSettled([batched.finish("a", 1, ok), batched.finish("b", 1, ok)]);
    expect(results[0]).toEqual({ status: "fulfilled", value: { applied: true, state: 10 } });
    expect(results[1]!.status === "rejected" && results[1]!.reason).toBeInstanceOf(NotStored);
  });

  it("batches notifications the same way", async () => {
    const { calls, target } = recorder();
    const batched = new BatchedCalls(() => target);
    const begun = await Promise.all(["a", "b"].map((id) => batched.beginNotification(id, "callback")));
    expect(begun.every((delivery) => delivery !== null)).toBe(true);
    await Promise.all([
      batched.finishNotification("a", "callback", 1, true, "200"),
      batched.finishNotification("b", "callback", 1, false, "500"),
    ]);
    expect(calls).toEqual([
      { method: "beginNotifications", items: ["a", "b"] },
      { method: "finishNotifications", items: ["a", "b"] },
    ]);
  });
});

describe("BatchedCalls after a failed call", () => {
  it("asks for a fresh stub once a call failed, and rejects the failed call's items", async () => {
    const { calls, target } = recorder();
    let connects = 0;
    let failNext = true;
    const flaky: BatchTarget = {
      ...target,
      beginMany: async (ids, runs) => {
        if (failNext) {
          failNext = false;
          throw new Error("Durable Object reset because its code was updated.");
        }
        return target.beginMany(ids, runs);
      },
    };
    const batched = new BatchedCalls(() => (connects++, flaky));
    await expect(batched.begin("a")).rejects.toThrow(/reset/);
    expect((await batched.begin("b")).run).toBe(true);
    expect(connects).toBe(2);
    expect(calls).toEqual([{ method: "beginMany", items: ["b"] }]);
  });

  it("a call that throws at once rejects its items instead of leaving them waiting", async () => {
    const { target } = recorder();
    const batched = new BatchedCalls(() => ({
      ...target,
      beginMany: () => {
        throw new TypeError("could not be serialized");
      },
    }));
    await expect(batched.begin("a")).rejects.toThrow(/serialized/);
  });

  it("a notification end the object could not store rejects with NotStored", async () => {
    const { target } = recorder();
    const batched = new BatchedCalls(() => ({
      ...target,
      finishNotifications: async (reports) => reports.map(() => false),
    }));
    await batched.beginNotification("a", "notify");
    await expect(batched.finishNotification("a", "notify", 1, true, "200")).rejects.toBeInstanceOf(NotStored);
  });
});
