// Proves the consumer's slot rule (src/delivery/fair-share.ts): a free slot goes to the waiting app
// holding the fewest, ties round-robin, so an app holds at most ⌈6 / n⌉ slots while n apps have
// units waiting, and no slot idles while a unit waits (random runs against the bound).
import { describe, expect, it } from "vitest";
import { FairShare } from "../../src/delivery/fair-share";

const unitsOf = (counts: Record<string, number>) =>
  Object.entries(counts).flatMap(([app, n]) => Array.from({ length: n }, (_, i) => ({ app, unit: `${app}${i}` })));

/** A small seeded generator (mulberry32): the runs are the same every time. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("FairShare", () => {
  it("a slow app first in the batch takes half the slots, not all of them", () => {
    const slots = new FairShare(6, unitsOf({ slow: 20, fast: 4 }));
    const started: string[] = [];
    for (let next = slots.take(); next; next = slots.take()) started.push(next.unit);
    expect(started).toEqual(["slow0", "fast0", "slow1", "fast1", "slow2", "fast2"]);
    // A fast task ends: its slot goes to the fast app, which holds fewer.
    slots.release("fast");
    expect(slots.take()?.unit).toBe("fast3");
    // The fast app has nothing left: the slow one may take every slot that frees up.
    for (const app of ["fast", "fast", "fast"]) slots.release(app);
    expect([slots.take(), slots.take(), slots.take(), slots.take()].map((next) => next?.unit ?? null)).toEqual([
      "slow3",
      "slow4",
      "slow5",
      null,
    ]);
  });

  it("ties go round-robin: three apps, one slot at a time", () => {
    const slots = new FairShare(1, unitsOf({ a: 3, b: 2, c: 1 }));
    const order: string[] = [];
    for (let next = slots.take(); next; next = slots.take()) {
      order.push(next.unit);
      slots.release(next.app);
    }
    expect(order).toEqual(["a0", "b0", "c0", "a1", "b1", "a2"]);
  });

  it("random runs: an app holds at most ⌈6 / n⌉ slots while n apps wait, and no slot idles while a unit waits", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const next = random(seed);
      const apps = 1 + Math.floor(next() * 8);
      const counts: Record<string, number> = {};
      for (let i = 0; i < apps; i++) counts[`app${i}`] = 1 + Math.floor(next() * 25);
      const slots = new FairShare(6, unitsOf(counts));
      const running: string[] = [];
      while (slots.waiting > 0 || running.length > 0) {
        // Fill every free slot, checking the bound at each start.
        for (;;) {
          const waitingApps = slots.appsWaiting();
          const taken = slots.take();
          if (!taken) break;
          running.push(taken.app);
          expect(slots.held(taken.app)).toBeLessThanOrEqual(Math.ceil(6 / waitingApps));
        }
        if (slots.waiting > 0) expect(running.length).toBe(6);
        // One running unit ends, any of them (a slow origin or a fast one).
        const [ended] = running.splice(Math.floor(next() * running.length), 1);
        slots.release(ended!);
      }
      expect(slots.drain()).toEqual([]);
    }
  });

  it("drain hands back every unit not started", () => {
    const slots = new FairShare(2, unitsOf({ a: 2, b: 2 }));
    slots.take();
    slots.take();
    expect(slots.drain().sort()).toEqual(["a1", "b1"]);
    expect(slots.take()).toBeNull();
  });
});
