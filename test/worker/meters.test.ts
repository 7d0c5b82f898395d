// The cost meters (`GET /v1/meters`): one delivered task moves each counter a task should cost
// (object requests, SQLite rows written and read, a queue write, read and ack, Worker
// invocations), and the route is the admin's only.
import { describe, expect, it } from "vitest";
import { CONTROL, call, createApp, submit, uniqueApp, waitForState } from "./helpers";

interface Meters {
  meters: Record<string, number>;
  isolates: number;
}

const read = async (app: string) => (await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as Meters;

describe("cost meters", () => {
  it("a delivered task shows in every counter it costs", async () => {
    const app = uniqueApp("meters");
    await createApp(app);
    const before = await read(app);
    const id = await submit(app, "/metered", { body: "{}" });
    await waitForState(id, [10]);
    // The consumer acks after finish answers: give it the moment it takes.
    let after = await read(app);
    for (let i = 0; i < 50 && after.meters["queue_acks"]! <= before.meters["queue_acks"]!; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      after = await read(app);
    }
    const delta = Object.fromEntries(
      Object.entries(after.meters).map(([key, value]) => [key, value - before.meters[key]!]),
    );
    expect(delta["do_requests"]).toBeGreaterThanOrEqual(3); // submit, begin, finish (+ claim, the meters reads)
    expect(delta["sql_rows_written"]).toBeGreaterThanOrEqual(3);
    expect(delta["sql_rows_read"]).toBeGreaterThanOrEqual(1);
    expect(delta["queue_writes"]).toBe(1);
    expect(delta["queue_reads"]).toBe(1);
    expect(delta["queue_acks"]).toBe(1);
    expect(delta["worker_invocations"]).toBeGreaterThanOrEqual(3); // submit, queue, and the polls
  });

  it("is the admin's only", async () => {
    const app = uniqueApp("meterkey");
    await createApp(app);
    const key = (await (
      await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["manage"] }) })
    ).json()) as { access_key: string; secret_key: string };
    const refused = await call(`${CONTROL}/v1/meters?apps=${app}`, {
      keys: { accessKey: key.access_key, secretKey: key.secret_key },
    });
    expect(refused.status).toBe(403);
    expect((await call(`${CONTROL}/v1/meters?apps=Bad_Name`)).status).toBe(400);
  });
});
