// Proves durability across a crash: `wrangler dev` is killed with SIGKILL (no graceful stop) while
// clients submit and the consumer delivers; after a restart on the same state every task that was
// answered 202 is delivered and finished. Prints how long recovery took and how many ran twice.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

describe("kill -9 of wrangler dev under load", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
  let gateway: Gateway | undefined;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-crash-"));

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it(
    "every task answered 202 before the kill is delivered and finished after the restart",
    { timeout: 240_000 },
    async () => {
      origin = await startOrigin({ quiet: true });
      const port = await freePort();
      gateway = await startGateway({ port, persistTo });
      const control = `localhost:${port}`;
      const appHost = `crash.async.localhost:${port}`;
      const created = await signedCall(port, control, "POST", "/v1/apps", {
        body: JSON.stringify({
          name: "crash",
          origin: origin.url,
          timeout: 5,
          retry: { min_backoff: 0.1, max_backoff: 1 },
        }),
      });
      expect(created.status).toBe(201);

      // Load: 8 clients submitting slow tasks (the origin sleeps 100 ms) until the kill.
      const accepted: string[] = [];
      let killed = false;
      const client = async () => {
        while (!killed) {
          try {
            const response = await signedCall(port, appHost, "POST", "/sleep/100", {
              body: `{"n":${accepted.length}}`,
              timeoutMs: 5_000,
            });
            if (response.status === 202) accepted.push(response.json<{ id: string }>().id);
          } catch {
            return; // the gateway is gone: what was not answered 202 was never promised
          }
        }
      };
      const clients = Array.from({ length: 8 }, client);
      const loadStarted = Date.now();
      while (accepted.length < 300 && Date.now() - loadStarted < 20_000)
        await new Promise((resolve) => setTimeout(resolve, 50));
      const phase = (what: string) =>
        console.log(`crash test: ${what} at ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);
      phase(`${accepted.length} accepted; killing`);
      await gateway.kill();
      killed = true;
      await Promise.all(clients);
      phase("killed, clients stopped");
      const acceptedAtKill = [...accepted];
      const deliveredBeforeKill = new Set(origin.received.map((request) => request.headers["asyncgate-task-id"])).size;

      const restartedAt = Date.now();
      gateway = await startGateway({ port, persistTo });
      const readyMs = Date.now() - restartedAt;
      phase("restarted");
      const pending = new Set(acceptedAtKill);
      let lastReport = Date.now();
      const deadline = Date.now() + 150_000;
      while (pending.size > 0 && Date.now() < deadline) {
        for (const id of [...pending]) {
          const task = await signedCall(port, control, "GET", `/v1/task/${id}`, { timeoutMs: 10_000 }).catch(
            () => null,
          );
          if (task?.status === 200 && task.json<{ state: number }>().state === 10) pending.delete(id);
        }
        if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 500));
        if (Date.now() - lastReport > 10_000) {
          phase(`${pending.size} still pending`);
          lastReport = Date.now();
        }
      }
      const recoveredMs = Date.now() - restartedAt;

      const deliveries = new Map<string, number>();
      for (const request of origin.received) {
        const id = String(request.headers["asyncgate-task-id"]);
        deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
      }
      const twice = acceptedAtKill.filter((id) => (deliveries.get(id) ?? 0) > 1).length;
      console.log(
        `kill -9 under load: ${acceptedAtKill.length} tasks answered 202 before the kill (${deliveredBeforeKill} delivered by then); ` +
          `restart ready in ${(readyMs / 1000).toFixed(1)} s; all finished ${(recoveredMs / 1000).toFixed(1)} s after the restart; ` +
          `${twice} delivered more than once`,
      );
      expect([...pending], gateway.output().slice(-3000)).toEqual([]);
      for (const id of acceptedAtKill) expect(deliveries.get(id) ?? 0).toBeGreaterThanOrEqual(1);
    },
  );
});
