// Proves delivery policies inside workerd with the real origin: statuses that are never retried,
// an origin's own "do not retry", and Retry-After holding the whole app.
import { describe, expect, it, vi } from "vitest";
import { createApp, received, submit, uniqueApp, waitForState } from "./helpers";

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
