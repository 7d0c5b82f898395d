// Proves the fixed-size latency histogram: any percentile read from it is within 5 % of the truth.
import { describe, expect, it } from "vitest";
import { bucketOf, percentiles, quantile } from "../../src/app/stats";

describe("latency histogram", () => {
  it("reads every percentile of a spread of values within 5 %", () => {
    const values = Array.from({ length: 1000 }, (_, i) => 5 + i * 37);
    const counts = new Array<number>(180).fill(0);
    for (const value of values) counts[bucketOf(value)]!++;
    for (const q of [0.5, 0.9, 0.99]) {
      const truth = values[Math.ceil(q * values.length) - 1]!;
      expect(Math.abs(quantile(counts, q)! - truth) / truth).toBeLessThanOrEqual(0.05);
    }
  });
  it("is empty without values and clamps the extremes", () => {
    expect(percentiles(new Array<number>(180).fill(0))).toEqual({ count: 0, p50: null, p90: null, p99: null });
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1e12)).toBe(179);
  });
});
