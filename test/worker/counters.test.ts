// Proves the per-state counts come from counters kept with every write, not a scan, and agree with the table through every transition.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import type { AttemptResult } from "../../src/shared/types";
import {
  CONTROL,
  call,
  createApp,
  finishParked,
  getTask,
  insertResults,
  makeDue,
  metered,
  parkedTask,
  sql,
  uniqueApp,
} from "./helpers";

const err500: AttemptResult = { kind: "response", status: 500, header: {}, body: new Uint8Array() };

describe("counters", () => {
  it("counts come from counters kept with every write, not from a scan", async () => {
    const app = uniqueApp("counts");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const store = openStore(meter.sql).tasks;
      insertResults(store, storage, 50, 10);
      meter.reset();
      const counts = store.counts();
      expect(meter.rowsRead()).toBeLessThanOrEqual(6);
      const truth = storage
        .exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
        .toArray();
      expect(counts["success"]).toBe(truth.find((row) => row.state === 10)?.n);
    });
    // Through transitions and deletion, the counters follow.
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    await stub.finish(id, 1, err500);
    const app2 = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> };
    const truth = await sql(app)((storage) =>
      storage.exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state").toArray(),
    );
    const count = (state: number) => truth.find((row) => row.state === state)?.n ?? 0;
    expect(app2.stats).toMatchObject({ waiting: count(0), doing: count(1), success: count(10), failed: count(11) });
  });

  it("the counters (and the in-flight count) agree with the table through every transition: begin, retry, fail, finish, cancel, retry, redrive, purge", async () => {
    const app = uniqueApp("agree");
    await createApp(app, { retry: { max_attempts: 2, min_backoff: 0.001, max_backoff: 0.001 } });
    const stub = appQueue(env, app);
    const steps: string[] = [];
    // Counters and table read in one turn of the object: the queue's consumer may move tasks between calls.
    const agree = async (step: string) => {
      steps.push(step);
      const { counters, truth } = await sql(app)((storage) => ({
        counters: openStore(storage).tasks.counts(),
        truth: storage
          .exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
          .toArray(),
      }));
      const count = (state: number) => truth.find((row) => row.state === state)?.n ?? 0;
      expect({
        step,
        waiting: counters["waiting"],
        doing: counters["doing"],
        success: counters["success"],
        failed: counters["failed"],
      }).toEqual({
        step,
        waiting: count(0),
        doing: count(1),
        success: count(10),
        failed: count(11),
      });
      // The queue window's count of messages out, kept in memory, agrees with the table too
      // (both read in one turn of the object: the consumer may begin a task between two calls).
      const { kept, counted } = await runInDurableObject(appQueue(env, app), async (instance: AppQueue, state) => {
        const counted = state.storage.sql
          .exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks WHERE state = 0 AND dispatched_ms IS NOT NULL")
          .one().n;
        const stats = await instance.stats({ kind: "admin" });
        return { counted, kept: stats.ok ? (stats.value["in_flight"] as number) : -1 };
      });
      expect({ step, in_flight: kept }).toEqual({ step, in_flight: counted });
    };
    await finishParked(app);
    await agree("finished");
    const failing = await parkedTask(app);
    const first = await stub.begin(failing);
    if (!first.run) throw new Error(first.reason);
    await agree("running");
    await stub.finish(failing, first.delivery.attempt, err500);
    await agree("retry scheduled");
    await makeDue(app, failing);
    const second = await stub.begin(failing);
    if (!second.run) throw new Error(second.reason);
    await stub.finish(failing, second.delivery.attempt, err500);
    expect((await getTask(failing)).state).toBe(11);
    await agree("failed");
    expect((await call(`${CONTROL}/v1/task/${failing}/retry`, { method: "POST" })).status).toBe(200);
    await agree("retried");
    const waiting = await parkedTask(app);
    expect((await call(`${CONTROL}/v1/task/${waiting}`, { method: "DELETE" })).status).toBe(200);
    await agree("canceled");
    expect((await call(`${CONTROL}/v1/apps/${app}/redrive`, { body: JSON.stringify({ state: 11 }) })).status).toBe(200);
    await agree("redriven");
    expect((await call(`${CONTROL}/v1/apps/${app}/purge`, { body: JSON.stringify({ state: 0 }) })).status).toBe(200);
    await agree("purged");
    expect(steps).toHaveLength(8);
  });
});
