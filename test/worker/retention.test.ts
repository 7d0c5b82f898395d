// Proves retention: delays and retry policies that would outlive it are refused; deletion goes oldest result first, in bounded batches, sparing pending notifications; a retried or redriven task's retention counts from its restart.
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { RETENTION_BATCH } from "../../src/app/alarm";
import { openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import { meters } from "../../src/shared/meters";
import { appNumberOf, newTaskId } from "../../src/shared/task-id";
import type { TestAppQueue } from "./test-app-queue";
import { CONTROL, call, createApp, finishParked, getTask, metered, newTask, sql, submit, uniqueApp } from "./helpers";

describe("retention against what is accepted", () => {
  it("a delay past the app's retention is refused with 400 delay_exceeds_retention", async () => {
    const app = uniqueApp("delay");
    await createApp(app, { retention: 3600 });
    const refused = await call(`http://${app}.async.localhost/x`, { body: "{}", headers: { "asyncgate-delay": "2h" } });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: "delay_exceeds_retention" });
    const notBefore = String(Math.floor(Date.now() / 1000) + 7200);
    const refusedAt = await call(`http://${app}.async.localhost/x`, {
      body: "{}",
      headers: { "asyncgate-not-before": notBefore },
    });
    expect(await refusedAt.json()).toMatchObject({ code: "delay_exceeds_retention" });
    expect(
      (await call(`http://${app}.async.localhost/x`, { body: "{}", headers: { "asyncgate-delay": "30m" } })).status,
    ).toBe(202);
  });

  it("a retry policy that can outlive retention is refused at create and at PATCH", async () => {
    const app = uniqueApp("rts");
    const long = { max_attempts: 100, min_backoff: 60, max_backoff: 3600 };
    const created = await call(`${CONTROL}/v1/apps`, {
      body: JSON.stringify({ name: app, origin: env.TEST_ORIGIN, retention: 3600, retry: long }),
    });
    expect(created.status).toBe(400);
    expect(await created.json()).toMatchObject({ code: "retention_too_short" });
    await createApp(app, { retention: 3600 });
    const patched = await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ retry: long }) });
    expect(await patched.json()).toMatchObject({ code: "retention_too_short" });
    const duration = await call(`${CONTROL}/v1/apps/${app}`, {
      method: "PATCH",
      body: JSON.stringify({ retry: { max_retry_duration: 7200 } }),
    });
    expect(await duration.json()).toMatchObject({ code: "retention_too_short" });
  });
});

describe("deleting past retention", () => {
  it("retention deletes by result order, the oldest results first, passing over a task with a notification pending; a pass with nothing to do reads little", async () => {
    const app = uniqueApp("retseq");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store, notifications } = openStore(meter.sql);
      const now = Date.now();
      const ids = Array.from({ length: 8 }, (_, i) => newTaskId(1, now - 100_000 + i));
      for (const id of ids) store.insert(newTask(id, now - 100_000));
      // Finished in the order 0..7, the first six long ago; the second one has a callback pending.
      ids.forEach((id, i) => store.markFinished(id, 0, 10, i < 6 ? now - 90_000 + i : now));
      notifications.add(ids[1]!, "callback", "https://example.com/cb", now);
      const metered0 = { ...meters };
      const first = store.deleteFinishedBefore(now - 60_000, 3);
      const second = store.deleteFinishedBefore(now - 60_000, 3);
      const third = store.deleteFinishedBefore(now - 60_000, 3);
      // What retention cost is metered apart (GET /v1/meters): the tasks it removed, the rows that wrote.
      const retention = {
        tasks: meters.retention_tasks - metered0.retention_tasks,
        rows: meters.retention_rows_written - metered0.retention_rows_written,
      };
      const left = storage
        .exec<{ id: string }>("SELECT id FROM tasks ORDER BY id")
        .toArray()
        .map((row) => row.id);
      // 100 newer results behind: a pass with nothing more to delete stops at the first of them.
      for (let i = 0; i < 100; i++) {
        const id = newTaskId(1, now + i);
        store.insert(newTask(id, now));
        store.markFinished(id, 0, 10, now);
      }
      meter.reset();
      const idle = store.deleteFinishedBefore(now - 60_000, 500);
      return {
        first,
        second,
        third,
        left: left.map((id) => ids.indexOf(id)),
        idle,
        idleReads: meter.rowsRead(),
        retention,
      };
    });
    expect(result.retention.tasks).toBe(5);
    // Each deleted task is at least its row (and, in this layout, its index entries).
    expect(result.retention.rows).toBeGreaterThanOrEqual(5);
    expect(result.idle).toEqual({ deleted: 0, more: false });
    expect(result.idleReads).toBeLessThanOrEqual(6);
    // 1 waits for its callback and is passed over: 0, 2, 3 in the first pass; 4, 5, then 6 too new.
    expect(result.first).toEqual({ deleted: 3, more: true });
    expect(result.second).toEqual({ deleted: 2, more: false });
    expect(result.third).toEqual({ deleted: 0, more: false });
    expect(result.left).toEqual([1, 6, 7]);
  });

  it("a failed task retried or redriven after most of its retention is not expired mid-attempt: its retention counts from the restart", async () => {
    const app = uniqueApp("restart");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const { tasks: store } = openStore(storage);
      const now = Date.now();
      const [redriven, waiting] = [newTaskId(1, now - 100_000), newTaskId(1, now - 99_000)];
      store.insert(newTask(redriven!, now - 100_000));
      store.insert(newTask(waiting!, now - 99_000));
      store.markFinished(redriven!, 0, 11, now - 90_000, "boom");
      store.resetForRetry(redriven!, now - 10_000, 3);
      const first = store.unfinishedStartedBefore(now - 60_000, 10).map((task) => task.id);
      const due = store.unfinishedRetentionDueMs(60_000);
      store.markFinished(waiting!, 0, 11, now, "expired");
      const dueAfter = store.unfinishedRetentionDueMs(60_000);
      const later = store.unfinishedStartedBefore(now + 51_000 - 60_000, 10).map((task) => task.id);
      return { first, due, dueAfter, later, redriven, waiting, now };
    });
    expect(result.first).toEqual([result.waiting]);
    expect(result.due).toBe(result.now - 99_000 + 60_000);
    expect(result.dueAfter).toBe(result.now - 10_000 + 60_000);
    expect(result.later).toEqual([result.redriven]);
  });

  it("POST /v1/task/<id>/retry of a task older than retention: the alarm leaves it to run", async () => {
    const app = uniqueApp("retryold");
    await createApp(app, { retention: 60, state: "Paused" });
    // A task id routes to its app's object by the app's number: take it from a real submission.
    const appNumber = appNumberOf(await submit(app, "/probe", { body: "{}" }))!;
    const id = await sql(app)((storage) => {
      const { tasks: store } = openStore(storage);
      const old = Date.now() - 120_000;
      const id = newTaskId(appNumber, old);
      store.insert(newTask(id, old));
      store.markFinished(id, 0, 11, old + 1_000, "boom");
      return id;
    });
    expect((await call(`${CONTROL}/v1/task/${id}/retry`, { method: "POST" })).status).toBe(200);
    await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(appQueue(env, app));
    expect(await getTask(id)).toMatchObject({ state: 0 });
  });

  it("a task whose notification is still pending stays past retention", async () => {
    const app = uniqueApp("keep");
    await createApp(app, { retention: 60 });
    const stub = appQueue(env, app);
    const id = await finishParked(app);
    await sql(app)((storage) => {
      storage.exec(
        "INSERT INTO notifications (task_id, kind, url, eta_ms) VALUES (?, 'callback', 'http://127.0.0.1:9/cb', ?)",
        id,
        Date.now() + 3_600_000,
      );
      storage.exec("UPDATE tasks SET finished_ms = ? WHERE id = ?", Date.now() - 120_000, id);
    });
    await runDurableObjectAlarm(stub);
    expect((await getTask(id)).state).toBe(10);
    await sql(app)((storage) => storage.exec("DELETE FROM notifications WHERE task_id = ?", id));
    await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(stub);
    expect((await call(`${CONTROL}/v1/task/${id}`)).status).toBe(404);
  });

  it(
    `retention works in batches of ${RETENTION_BATCH}: each alarm expires and deletes a bounded number, all expire in the end`,
    { timeout: 20_000 },
    async () => {
      const app = uniqueApp("batch");
      await createApp(app, { retention: 60, state: "Paused" });
      const total = RETENTION_BATCH * 2 + 100;
      const bounded = await sql(app)((storage) => {
        const store = openStore(storage).tasks;
        const old = Date.now() - 120_000;
        for (let i = 0; i < total; i++) {
          store.insert(newTask(newTaskId(1, old + i), old + i, { etaMs: old }));
        }
        const expiring = store.unfinishedStartedBefore(Date.now() - 60_000, RETENTION_BATCH);
        for (const task of expiring) store.markFinished(task.id, task.state, 11, old + 1, "expired");
        return { expiring: expiring.length, deleted: store.deleteFinishedBefore(Date.now() - 60_000, RETENTION_BATCH) };
      });
      expect(bounded).toEqual({ expiring: RETENTION_BATCH, deleted: { deleted: RETENTION_BATCH, more: true } });
      await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => state.storage.setAlarm(Date.now()));
      const remaining = () =>
        sql(app)((storage) => storage.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks WHERE state = 0").one().n);
      await vi.waitUntil(async () => (await runDurableObjectAlarm(appQueue(env, app)), (await remaining()) === 0), {
        timeout: 10_000,
        interval: 50,
      });
    },
  );
});

describe("the alarm's bounded duties", () => {
  it(
    `expires at most ${RETENTION_BATCH} lost leases per alarm, the rest in the next`,
    { timeout: 20_000 },
    async () => {
      const app = uniqueApp("leases");
      await createApp(app, { state: "Paused", retry: { max_attempts: 1 } });
      const total = RETENTION_BATCH + 100;
      const counts = await runInDurableObject(appQueue(env, app), async (instance: TestAppQueue) => {
        // The object's own store: running attempts are kept in its memory.
        const store = instance.tasks;
        const now = Date.now();
        for (let i = 0; i < total; i++) {
          const id = newTaskId(1, now + i);
          store.insert(newTask(id, now, { etaMs: now }));
          store.markDoing(id, 1, now - 60_000, now - 1000); // running, its lease run out
        }
        const running = () => store.runningCount();
        // One alarm's pass, in this turn of the object (no other alarm can run in between).
        await instance.alarm();
        const afterOne = running();
        await instance.alarm();
        return { afterOne, afterTwo: running() };
      });
      expect(counts).toEqual({ afterOne: 100, afterTwo: 0 });
    },
  );
});
