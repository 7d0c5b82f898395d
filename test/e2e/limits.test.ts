// Proves delivery limits live in SQLite, not memory: a rate limit holds across a restart of
// `wrangler dev` (the token bucket taken before the restart still governs the next attempt).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

describe("limits across a restart of wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
  let gateway: Gateway | undefined;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-limits-"));

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it("one task per 5 s (max_dispatches_per_second 0.2) before and after the restart", { timeout: 90_000 }, async () => {
    origin = await startOrigin({ quiet: true });
    const port = await freePort();
    gateway = await startGateway({ port, persistTo });
    const control = `localhost:${port}`;
    const created = await signedCall(port, control, "POST", "/v1/apps", {
      body: JSON.stringify({
        name: "limited",
        origin: origin.url,
        rate_limits: { max_dispatches_per_second: 0.2, max_burst_size: 1 },
      }),
    });
    expect(created.status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const submitted = await signedCall(port, `limited.async.localhost:${port}`, "POST", `/limited/${i}`, {
        body: "{}",
      });
      expect(submitted.status).toBe(202);
      ids.push(submitted.json<{ id: string }>().id);
    }
    const arrivals = () =>
      origin!.received.filter((request) => String(request.url).startsWith("/limited/")).map((request) => request.at);
    await vi.waitUntil(() => arrivals().length >= 1, { timeout: 10_000, interval: 50 });
    // Its result recorded before the restart: a stop between the origin's answer and the finish
    // would deliver that task again after it (at least once), which is not what this test is about.
    await vi.waitUntil(
      async () => {
        for (const id of ids) {
          const task = await signedCall(port, control, "GET", `/v1/task/${id}`);
          if (task.json<{ state: number }>().state === 10) return true;
        }
        return false;
      },
      { timeout: 10_000, interval: 50 },
    );
    await gateway.stop();
    gateway = await startGateway({ port, persistTo });
    // A submission right after the restart makes the object send what the limits allow at once:
    // a bucket forgotten in the restart would let the next task out now, not 5 s after the first.
    const after = await signedCall(port, `limited.async.localhost:${port}`, "POST", "/limited/3", { body: "{}" });
    expect(after.status).toBe(202);
    ids.push(after.json<{ id: string }>().id);
    // Polling wakes the app's object (local alarms do not survive a restart; the object re-arms its own).
    await vi.waitUntil(
      async () => {
        for (const id of ids) {
          const task = await signedCall(port, control, "GET", `/v1/task/${id}`);
          if (task.json<{ state: number }>().state !== 10) return false;
        }
        return true;
      },
      { timeout: 60_000, interval: 500 },
    );
    const times = arrivals().sort((a, b) => a - b);
    expect(times.length).toBe(4);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(4_500);
  });
});
