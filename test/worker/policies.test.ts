// Proves delivery policies inside workerd with the real origin: statuses that are never retried,
// an origin's own "do not retry", and Retry-After holding the whole app.
import { describe, expect, it, vi } from "vitest";
import { CONTROL, call, createApp, received, submit, uniqueApp, waitForState } from "./helpers";

describe("status rules", () => {
  it("a 404 listed in no_retry_statuses is delivered once and ends the task as 11", async () => {
    const app = uniqueApp("nrs");
    await createApp(app, { retry: { no_retry_statuses: [404], min_backoff: 0.05, max_backoff: 0.1 } });
    const id = await submit(app, "/status/404", { body: "{}" });
    const task = await waitForState(id, [11]);
    expect(task).toMatchObject({ attempts: 1, response: { status_code: 404 } });
    expect((await received(id)).length).toBe(1);
  });

  it("a 500 with Asyncgate-No-Retry: true is delivered once; a plain 500 is retried", async () => {
    const app = uniqueApp("nrh");
    await createApp(app, { retry: { max_attempts: 3, min_backoff: 0.05, max_backoff: 0.1 } });
    const final = await submit(app, "/no-retry/500", { body: "{}" });
    expect(await waitForState(final, [11])).toMatchObject({ attempts: 1, response: { status_code: 500 } });
    expect((await received(final)).length).toBe(1);
    const retried = await submit(app, "/status/500", { body: "{}" });
    expect(await waitForState(retried, [11])).toMatchObject({ attempts: 3 });
  });
});

describe("Retry-After", () => {
  it("after a 429 with Retry-After: 2 neither that task nor any other task of the app reaches the origin for 2 s", async () => {
    const app = uniqueApp("busy");
    await createApp(app, { retry: { min_backoff: 0.05, max_backoff: 10 } });
    const busy = await submit(app, `/busy/${app}/2`, { body: "{}" });
    const [first] = (await vi.waitUntil(async () => {
      const deliveries = await received(busy);
      return deliveries.length > 0 ? deliveries : undefined;
    })) as Awaited<ReturnType<typeof received>>;
    // Submitted while the app is held.
    const other = await submit(app, "/other", { body: "{}" });
    const done = await waitForState(busy, [10], 10_000);
    expect(done.attempts).toBe(2);
    await waitForState(other, [10], 10_000);
    const [, second] = await received(busy);
    const [otherDelivery] = await received(other);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(2000);
    expect(otherDelivery!.at - first!.at).toBeGreaterThanOrEqual(2000);
  });
});

describe("rate limits", () => {
  it("8 tasks at max_dispatches_per_second 2 and max_burst_size 1 reach the origin over at least 3 s", async () => {
    const app = uniqueApp("rate");
    await createApp(app, { rate_limits: { max_dispatches_per_second: 2, max_burst_size: 1 } });
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => submit(app, `/rate/${i}`, { body: "{}" })));
    for (const id of ids) await waitForState(id, [10], 15_000);
    const times = (await Promise.all(ids.map(async (id) => (await received(id))[0]!.at))).sort((a, b) => a - b);
    expect(times[7]! - times[0]!).toBeGreaterThanOrEqual(3000);
    // Never two within a token's time (0.5 s), give or take the clock's grain.
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(450);
  }, 30_000);

  it("max_concurrent_dispatches 2: a burst of 12 slow tasks never has more than 2 at the origin", async () => {
    const app = uniqueApp("conc");
    await createApp(app, { rate_limits: { max_concurrent_dispatches: 2 } });
    const ids = await Promise.all(Array.from({ length: 12 }, () => submit(app, "/sleep/300", { body: "{}" })));
    for (const id of ids) await waitForState(id, [10], 20_000);
    const starts = (await Promise.all(ids.map(async (id) => (await received(id))[0]!.at))).sort((a, b) => a - b);
    // Each holds the origin for 300 ms: at most 2 may start within any 300 ms.
    for (let i = 2; i < starts.length; i++) expect(starts[i]! - starts[i - 2]!).toBeGreaterThanOrEqual(290);
  }, 30_000);
});

describe("circuit breaker", () => {
  it("opens after repeated failures, probes after the cool-down, closes when the probe succeeds", async () => {
    const app = uniqueApp("circuit");
    await createApp(app, { circuit_breaker: { failure_threshold: 2, cool_down: 1 }, retry: { max_attempts: 10, min_backoff: 0.05, max_backoff: 0.1 } });
    const id = await submit(app, `/flaky/${app}/3`, { body: "{}" });
    const opened = await vi.waitUntil(
      async () => {
        const record = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { delivery: { state: string; reason: string; until: number } };
        return record.delivery.state === "open" ? record.delivery : undefined;
      },
      { timeout: 5000, interval: 20 },
    );
    expect(opened.reason).toContain("2 consecutive failures");
    const done = await waitForState(id, [10], 10_000);
    expect(done.attempts).toBe(4);
    const attempts = (await received(id)).map((delivery) => delivery.at);
    // Attempt 3 is the probe after the first cool-down (it fails: open again), attempt 4 the next probe.
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(950);
    expect(attempts[3]! - attempts[2]!).toBeGreaterThanOrEqual(950);
    const closed = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { delivery: { state: string } };
    expect(closed.delivery.state).toBe("closed");
  }, 20_000);
});
