// Proves retention: delays and retry policies that would outlive it are refused; unfinished tasks expire in bounded batches; results go a partition at a time (sealed, then dropped whole once past retention, near zero rows written per task), held by a pending notification; a redriven result comes back to the live table; a retried or redriven task's retention counts from its restart.
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
  it("retention seals the live table into a partition and drops it whole once its every result is past retention: rows written per task near zero, a pending notification holds it back", async () => {
    const app = uniqueApp("retpart");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store, reads, notifications } = openStore(meter.sql);
      const now = Date.now();
      const minute = 60_000;
      const ids = Array.from({ length: 1000 }, (_, i) => newTaskId(1, now - 10 * minute + i));
      for (const id of ids) store.insert(newTask(id, now - 10 * minute));
      // 999 finished long ago, one of them failed and one with a callback pending; one still waits.
      ids.slice(0, 999).forEach((id, i) => store.markFinished(id, 0, i === 7 ? 11 : 10, now - 5 * minute + i));
      notifications.add(ids[3]!, "callback", "https://example.com/cb", now);
      const tables = () =>
        storage
          .exec<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tasks%' ORDER BY name",
          )
          .toArray()
          .map((row) => row.name);
      const beforeSeal = store.nextWakeMs(30_000, now, minute, false, false);
      meter.reset();
      const sealed = store.retire(now, minute);
      const sealWritten = meter.rowsWritten();
      const afterSeal = {
        tables: tables().length,
        waiting: store.get(ids[999]!)?.state,
        finished: store.get(ids[5]!)?.state,
        listed: reads.list(10, 3, null).length,
        failed: reads.failedMatching({ sinceMs: null, untilMs: now, statusCode: null }, "", 10),
      };
      // A pending notification holds the partition (its record is what the notification sends).
      const held = store.retire(now + minute, minute);
      storage.exec("DELETE FROM notifications WHERE task_id = ?", ids[3]!);
      const counts = store.counts();
      meter.reset();
      const dropped = store.retire(now + minute, minute);
      const written = meter.rowsWritten();
      return {
        beforeSeal,
        sealed,
        afterSeal,
        held,
        dropped,
        written,
        sealWritten,
        counts,
        after: store.counts(),
        gone: store.get(ids[5]!),
        stillWaiting: store.get(ids[999]!)?.state,
        tables: tables(),
        now,
        failedId: ids[7],
      };
    });
    // Due once the oldest result is a partition period old (a minute here): at once.
    expect(result.beforeSeal).toBeLessThanOrEqual(result.now);
    expect(result.sealed).toEqual({ deleted: 0 });
    expect(result.afterSeal).toEqual({ tables: 2, waiting: 0, finished: 10, listed: 3, failed: [result.failedId] });
    expect(result.held).toEqual({ deleted: 0 });
    expect(result.dropped).toEqual({ deleted: 999 });
    // The drop writes schema bookkeeping, the counts' checkpoint and the results log's rows: not a
    // row per task. With the seal (its schema changes, the checkpoint, the waiting task moved): at
    // most 0.05 rows per task removed, issue 24's bound (a day's partition holds far more tasks).
    expect(result.written).toBeLessThanOrEqual(20);
    expect((result.sealWritten + result.written) / 999).toBeLessThanOrEqual(0.05);
    expect(result.counts).toMatchObject({ success: 998, failed: 1, waiting: 1 });
    expect(result.after).toMatchObject({ success: 0, failed: 0, waiting: 1 });
    expect(result.gone).toBeNull();
    expect(result.stillWaiting).toBe(0);
    expect(result.tables).toEqual(["tasks"]);
  });

  it("a result redriven out of a partition comes back to the live table, runs again, and is found by id and by the feed", async () => {
    const app = uniqueApp("retredrive");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const { tasks: store, reads } = openStore(storage);
      const now = Date.now();
      // Sealed (its result older than the hour's partition period, 7.5 min), not yet dropped.
      const id = newTaskId(1, now - 2_000_000);
      store.insert(newTask(id, now - 2_000_000));
      store.markFinished(id, 0, 11, now - 1_000_000, "boom");
      store.retire(now, 3_600_000);
      const sealedIn = storage.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks WHERE id = ?", id).one().n;
      store.resetForRetry(id, now, 3);
      const back = store.get(id)!;
      const due = store.dueUnsent(now, 10);
      store.markDispatched(due, now);
      store.markDoing(id, back.attempts + 1, now, now + 60_000);
      const seq = store.markFinished(id, 1, 10, now);
      return { sealedIn, back: back.state, due, seq, replayed: reads.finishedSince(0).rows.map((row) => row.seq), id };
    });
    expect(result.sealedIn).toBe(0);
    expect(result.back).toBe(0);
    expect(result.due).toEqual([result.id]);
    expect(result.replayed).toEqual([result.seq]);
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
        return { expiring: expiring.length };
      });
      expect(bounded).toEqual({ expiring: RETENTION_BATCH });
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
