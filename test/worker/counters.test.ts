// Proves the per-state counts come from counters kept with every write, not a scan, and agree with the table through every transition.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { TestAppQueue } from "./test-app-queue";
import { openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import { createdMsOf, shardRouteOf } from "../../src/shared/task-id";
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
  newTask,
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

  it("after a restart between checkpoints, the counts and the latest seq are rebuilt exactly from the table; rows written stay per checkpoint, not per task", async () => {
    const app = uniqueApp("rebuild");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const before = openStore(meter.sql).tasks;
      const now = Date.now();
      const ids: string[] = [];
      meter.reset();
      before.openCountBatch();
      for (let i = 0; i < 20; i++) {
        const id = before.nextId(1, now);
        ids.push(id);
        before.insert(newTask(id, now));
      }
      ids.slice(0, 8).forEach((id) => before.markFinished(id, 0, 10, now));
      ids.slice(8, 11).forEach((id) => before.markFinished(id, 0, 11, now));
      before.closeCountBatch(now);
      before.commitCountBatch(); // as a group commit does once its transaction committed
      // A failed task made to wait again: the table would not tell it, so it writes the checkpoint.
      before.resetForRetry(ids[8]!, now, 1);
      const afterRetry = meter.rowsWritten();
      ids.slice(11, 14).forEach((id) => before.markFinished(id, 0, 10, now));
      const later = before.nextId(1, now);
      before.insert(newTask(later, now));
      // The object dies here: nothing since the retry's checkpoint was written but the rows.
      const rebuilt = openStore(storage).tasks;
      const truth = storage
        .exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
        .toArray();
      const count = (state: number) => truth.find((row) => row.state === state)?.n ?? 0;
      return {
        rebuilt: { ...rebuilt.counts(), seq: rebuilt.currentSeq() },
        expected: { waiting: count(0), doing: 0, success: count(10), failed: count(11), seq: before.currentSeq() },
        next: rebuilt.nextId(1, now) > later,
        ordered: ids.every((id, i) => i === 0 || id > ids[i - 1]!),
        // Ids made within one millisecond keep it (their random part grows), not run ahead of the clock.
        sameMs: ids.every((id) => createdMsOf(id) === now),
        afterRetry,
      };
    });
    expect(result.rebuilt).toMatchObject(result.expected);
    expect(result.expected).toMatchObject({ success: 11, failed: 2, seq: 14 });
    expect(result.next).toBe(true);
    expect(result.ordered).toBe(true);
    expect(result.sameMs).toBe(true);
    // 20 rows with their 3 index entries, 11 results (row, tasks_by_seq), the retry (row, 3 entries),
    // and one checkpoint upsert for the batch and one for the retry (up to 2 rows each): nothing per task.
    expect(result.afterRetry).toBeLessThanOrEqual(20 * 4 + 11 * 2 + 4 + 2 * 2);
  });

  it("the counters (and the in-flight count) agree with the table through every transition: begin, retry, fail, finish, cancel, retry, redrive, purge", async () => {
    const app = uniqueApp("agree");
    await createApp(app, { retry: { max_attempts: 2, min_backoff: 0.001, max_backoff: 0.001 } });
    const stub = appQueue(env, app);
    const steps: string[] = [];
    // Counters, running attempts (kept in memory) and the table read in one turn of the object:
    // the queue's consumer may move tasks between calls.
    const agree = async (step: string) => {
      steps.push(step);
      const seen = await runInDurableObject(appQueue(env, app), async (instance: TestAppQueue, state) => {
        const described = await instance.describe({ kind: "admin" });
        const stats = await instance.stats({ kind: "admin" });
        const running = await instance.listTasks({ kind: "admin" }, { state: 1, limit: 1000, below: null, from: null });
        const runningIds = new Set(running.ok ? running.value.tasks.map((task) => task.id) : []);
        const truth = state.storage.sql
          .exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
          .toArray();
        // Messages out that no attempt has begun from: waiting rows, not running, with a mark
        // (kept in memory): a mark left on a running, finished or deleted task would count here.
        const waitingRows = state.storage.sql.exec<{ id: string }>("SELECT id FROM tasks WHERE state = 0").toArray();
        const marked: { id: string }[] = [];
        for (const row of waitingRows) if ((await instance.sentAt(row.id)) !== null) marked.push(row);
        return {
          counters: described.ok ? described.value.stats : {},
          truth,
          running: runningIds.size,
          counted: marked.filter((row) => !runningIds.has(row.id)).length,
          kept: stats.ok ? (stats.value["in_flight"] as number) : -1,
        };
      });
      const count = (state: number) => seen.truth.find((row) => row.state === state)?.n ?? 0;
      expect({
        step,
        waiting: seen.counters["waiting"],
        doing: seen.counters["doing"],
        success: seen.counters["success"],
        failed: seen.counters["failed"],
      }).toEqual({
        step,
        // A running task's row waits: state 1 lives in memory.
        waiting: count(0) - seen.running,
        doing: seen.running,
        success: count(10),
        failed: count(11),
      });
      // The queue window's count of messages out, kept in memory, agrees with the table too.
      expect({ step, in_flight: seen.kept }).toEqual({ step, in_flight: seen.counted });
    };
    await finishParked(app);
    await agree("finished");
    const failing = await parkedTask(app);
    const first = await stub.begin(failing);
    if (!first.run) throw new Error(first.reason);
    await agree("running");
    expect((await getTask(failing)).state).toBe(1);
    // Paused and resumed while it runs: every waiting task's message is forgotten; the running
    // task is not sent again (the outbox passes over running attempts) and the window count holds.
    for (const state of ["Paused", "Active"]) {
      const patched = await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ state }) });
      expect(patched.status).toBe(200);
    }
    await agree("paused and resumed while running");
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
    expect(steps).toHaveLength(9);
  });

  it("a shard's ids keep their route and grow within a millisecond, and never spill into the next partition", async () => {
    const app = uniqueApp("shard-ids");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const tasks = openStore(storage).tasks;
      const route = { partitionMinutes: 1, shard: 3 };
      const lastMs = Math.floor(Date.now() / 60_000) * 60_000 + 59_999; // the partition's last ms
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const id = tasks.nextId(7, lastMs, route, lastMs);
        tasks.insert(newTask(id, lastMs));
        ids.push(id);
      }
      // The newest id's random part at its end: the next one cannot stay in this millisecond.
      const full = `${ids[ids.length - 1]!.slice(0, 26)}ffffff`;
      tasks.insert(newTask(full, lastMs));
      let refused = false;
      try {
        tasks.nextId(7, lastMs, route, lastMs);
      } catch {
        refused = true;
      }
      return {
        routes: ids.map((id) => shardRouteOf(id)),
        ordered: ids.every((id, i) => i === 0 || id > ids[i - 1]!),
        sameMs: ids.every((id) => createdMsOf(id) === lastMs),
        refused,
        unbounded: createdMsOf(tasks.nextId(7, lastMs, route)),
        lastMs,
      };
    });
    expect(result.routes.every((route) => route?.shard === 3 && route.partitionMinutes === 1)).toBe(true);
    expect(result.ordered).toBe(true);
    expect(result.sameMs).toBe(true);
    expect(result.refused).toBe(true);
    expect(result.unbounded).toBe(result.lastMs + 1);
  });
});
