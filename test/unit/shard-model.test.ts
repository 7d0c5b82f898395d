// Proves the shard model (bench/shard-model.mjs) behaves as a capacity model must: rates grow with
// the shards until a named limit other than the shards' binds, one object reproduces the bench's
// one-object figures, one queue becomes the limit for many shards, and sharding does not make a
// task much dearer. Pure arithmetic: no gateway, no timing.
import { describe, expect, it } from "vitest";
import {
  INPUTS,
  QUEUES,
  SHARDS,
  acceptP99Ms,
  atRate,
  costPerMillion,
  limitsAt,
  loadShapeCheck,
  modelRow,
  oneObjectStorageCeiling,
  storageCeiling,
  sustained,
  withInputs,
} from "../../bench/shard-model.mjs";

const MODES = ["submit", "deliver", "both"] as const;
const SHARD_LIMITS = ["shard requests", "shard time", "shard window"];
const NAMED = [...SHARD_LIMITS, "queue messages", "queue consumers", "home requests"];

describe("shard model: capacity", () => {
  for (const queues of QUEUES) {
    for (const mode of MODES) {
      it(`${mode}, ${queues} queue(s): doubles with the shards while a shard limit binds, never falls after`, () => {
        for (let i = 1; i < SHARDS.length; i++) {
          const before = sustained({ shards: SHARDS[i - 1], queues, mode });
          const after = sustained({ shards: SHARDS[i], queues, mode });
          expect(NAMED).toContain(before.binding);
          if (SHARD_LIMITS.includes(before.binding) && SHARD_LIMITS.includes(after.binding)) {
            expect(after.rate / before.rate).toBeGreaterThan(1.99);
          } else {
            // Past the shards' own limits only partition opens (N per partition) still grow: ≤ 0.1 %.
            expect(after.rate).toBeGreaterThanOrEqual(before.rate * 0.999);
          }
        }
      });
    }
  }

  it("one queue is the submit limit for 64 shards, not for 32 or with 2 queues", () => {
    expect(sustained({ shards: 64, queues: 1, mode: "submit" }).binding).toBe("queue messages");
    expect(sustained({ shards: 32, queues: 1, mode: "submit" }).binding).not.toMatch(/^queue/);
    expect(sustained({ shards: 64, queues: 2, mode: "submit" }).binding).not.toMatch(/^queue/);
  });

  it("with reports the home can take, one queue's consumers bind steady traffic at 64 shards; 4 queues lift it", () => {
    const inputs = withInputs({ assumed: { reportBatch: 50 } });
    const one = sustained({ shards: 64, queues: 1, mode: "both" }, inputs);
    const four = sustained({ shards: 64, queues: 4, mode: "both" }, inputs);
    expect(one.binding).toBe("queue consumers");
    expect(four.binding).not.toMatch(/^queue/);
    expect(four.rate).toBeGreaterThan(one.rate * 1.5);
  });

  it("with the assumed reports the home binds delivery from 8 shards, at the rate its requests allow", () => {
    const row = sustained({ shards: 8, queues: 4, mode: "deliver" });
    expect(row.binding).toBe("home requests");
    expect(row.rate).toBeCloseTo(INPUTS.limits.objectRequestsPerSecond * INPUTS.assumed.reportBatch, -1);
    expect(sustained({ shards: 4, queues: 4, mode: "deliver" }).binding).toBe("shard time");
  });

  it("queues beyond the shards add nothing (shard k sends to queue k mod Q)", () => {
    expect({ ...modelRow(1, 4), queues: 1 }).toEqual(modelRow(1, 1));
    const messages = (shards: number) =>
      limitsAt(1000, { shards, queues: 4, mode: "submit" }).find((limit) => limit.limit === "queue messages")!;
    expect(messages(1).capacity).toBe(INPUTS.limits.queueMessagesPerSecond);
    expect(messages(2).capacity).toBe(2 * INPUTS.limits.queueMessagesPerSecond);
    expect(messages(8).capacity).toBe(4 * INPUTS.limits.queueMessagesPerSecond);
  });
});

describe("shard model: one object", () => {
  const today = modelRow(1, 1, { sharded: false });

  it("reproduces the one-object figures: drain 504 tasks/s, accepts at the soft limit, $2.94 per million within 2 %", () => {
    expect(today.deliver.rate).toBeCloseTo(504, 0);
    expect(today.deliver.binding).toBe("shard time");
    expect(today.submit.rate).toBeCloseTo(Math.min(1000, 1679), 0);
    const check = loadShapeCheck();
    expect(Math.abs(check.model_usd / check.measured_usd - 1)).toBeLessThan(0.02);
  });

  it("one shard behind a home sustains what the one object does, at most 20 % dearer", () => {
    const one = modelRow(1, 1);
    for (const mode of MODES) expect(one[mode].rate).toBeCloseTo(today[mode].rate, 0);
    expect(one.usd_per_million / today.usd_per_million).toBeLessThan(1.2);
  });

  it("holds what the issue says one object holds: ~5.5 tasks/s at 7 days, ~39 at 1 day (3 KB tasks)", () => {
    expect(oneObjectStorageCeiling(7)).toBeGreaterThan(5);
    expect(oneObjectStorageCeiling(7)).toBeLessThan(5.6);
    expect(oneObjectStorageCeiling(1)).toBeCloseTo(7 * oneObjectStorageCeiling(7), 6);
    // A partition's shards hold P seconds each: a day's partition of 1 shard = 1 day's retention.
    expect(storageCeiling(1, 86_400)).toBeCloseTo(oneObjectStorageCeiling(1), 6);
    expect(storageCeiling(64, 3_600)).toBeCloseTo(64 * 24 * oneObjectStorageCeiling(1), 6);
  });
});

describe("shard model: cost and latency", () => {
  it("a delivered task costs at most 15 % more with 64 shards than with 1, for every queue count", () => {
    for (const queues of QUEUES) {
      const one = modelRow(1, queues).usd_per_million;
      const many = modelRow(64, queues).usd_per_million;
      expect(many / one).toBeLessThan(1.15);
      expect(many).toBeGreaterThanOrEqual(one * 0.99);
    }
  });

  it("4 shards stay within the issue's $4 per million", () => {
    expect(modelRow(4, 1).usd_per_million).toBeLessThan(4);
  });

  it("thin shards pay for thin queue messages: dearer at 10 tasks/s a shard than at 500", () => {
    const thin = costPerMillion(640, { shards: 64 });
    const full = costPerMillion(32_000, { shards: 64 });
    expect(thin.perTask.queue_writes).toBeGreaterThan(full.perTask.queue_writes * 2);
    expect(thin.usd).toBeGreaterThan(full.usd);
  });

  it("accept p99 is M/M/1's ln(100) / (μ − λ), growing with utilisation", () => {
    const mu = 1000;
    expect(acceptP99Ms(500)).toBeCloseTo((Math.log(100) / (mu - 500)) * 1000, 6);
    expect(acceptP99Ms(800)).toBeGreaterThan(2 * acceptP99Ms(500));
    expect(acceptP99Ms(mu)).toBe(Infinity);
  });

  it("interpolates measured figures through their points and holds them flat beyond", () => {
    const points = INPUTS.measured.deliverRequestsByRate;
    for (const [rate, value] of points) expect(atRate(points, rate!)).toBeCloseTo(value!, 9);
    expect(atRate(points, 0.1)).toBe(points[0]![1]);
    expect(atRate(points, 1e6)).toBe(points.at(-1)![1]);
    expect(atRate(points, 200)).toBeLessThan(1.0);
    expect(atRate(points, 200)).toBeGreaterThan(0.76);
  });
});
