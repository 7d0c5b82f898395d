// Proves the hardening of the app's object: bounded reads (paged replay, listings, counters,
// range scans), bound parameters, retention checked against what is accepted, one bad operation
// never sinking its group, re-sends only of what is lost, and the smaller guarantees of issue 12.
import { env, exports } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { RETENTION_BATCH, type AppQueue } from "../../src/app/app-queue";
import { REPLAY_PAGE_BYTES, TaskStore } from "../../src/app/task-store";
import { defaultConfig } from "../../src/config/app-config";
import { deliverTask } from "../../src/delivery/consumer";
import { appQueue, registry } from "../../src/app/stubs";
import { newTaskId } from "../../src/shared/task-id";
import type { AttemptResult, TaskRecord } from "../../src/shared/types";
import { CONTROL, call, createApp, finishParked, getTask, makeDue, newTask, parkedTask, signedRequest, submit, submitInput, uniqueApp, waitForState } from "./helpers";

const err500: AttemptResult = { kind: "response", status: 500, header: {}, body: new Uint8Array() };

const sql = (app: string) => <T>(run: (sql: SqlStorage, instance: AppQueue) => T) =>
  runInDurableObject(appQueue(env, app), (instance: AppQueue, state) => run(state.storage.sql, instance));

/** A SqlStorage that counts the rows its cursors read. */
function metered(inner: SqlStorage): { sql: SqlStorage; rowsRead: () => number; rowsWritten: () => number; reset: () => void } {
  let cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  const sql = new Proxy(inner, {
    get(target, property) {
      if (property !== "exec") return Reflect.get(target, property) as unknown;
      return (query: string, ...bindings: SqlStorageValue[]) => {
        const cursor = target.exec(query, ...bindings);
        cursors.push(cursor);
        return cursor;
      };
    },
  });
  return {
    sql,
    rowsRead: () => cursors.reduce((sum, cursor) => sum + cursor.rowsRead, 0),
    rowsWritten: () => cursors.reduce((sum, cursor) => sum + cursor.rowsWritten, 0),
    reset: () => (cursors = []),
  };
}

/** Inserts `count` finished tasks with `bodyBytes` response bodies and consecutive seqs, the way finish would. */
function insertResults(store: TaskStore, sql: SqlStorage, count: number, bodyBytes: number): void {
  const body = new Uint8Array(bodyBytes).fill(7);
  for (let i = 0; i < count; i++) {
    const id = newTaskId(1, Date.now() - 1000 + i);
    store.insert(newTask(id, Date.now(), { request: { method: "POST", path: `/r/${i}`, raw_query: "", header: {}, body: new Uint8Array() } }));
    sql.exec("UPDATE tasks SET response_status = 200, response_header = '{}', response_body = ? WHERE id = ?", body.slice().buffer, id);
    store.markFinished(id, 0, 10, Date.now());
  }
}

describe("bounded reads", () => {
  it("a resume from since=0 over 50 MB of results arrives whole and in order, reading at most ~8 MB per turn", async () => {
    const app = uniqueApp("replay");
    await createApp(app);
    const count = 80;
    const bodyBytes = 650_000; // 80 × 650 KB ≈ 52 MB of results
    await sql(app)((storage) => insertResults(new TaskStore(storage), storage, count, bodyBytes));
    const response = await exports.default.fetch(await signedRequest(`${CONTROL}/v1/tasks?app=${app}&since=0`, { headers: { upgrade: "websocket" } }));
    expect(response.status).toBe(101);
    const ws = response.webSocket!;
    const results: (TaskRecord & { seq: number })[] = [];
    const all = new Promise<void>((resolve) =>
      ws.addEventListener("message", (event) => {
        const frame = JSON.parse(event.data as string) as (TaskRecord & { seq: number }) | { type: string };
        if ("type" in frame) return;
        results.push(frame);
        if (results.length === count) resolve();
      }),
    );
    ws.accept();
    await all;
    ws.close(1000);
    expect(results.map((result) => result.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    for (const result of results) expect(atob(result.response!.body).length).toBe(bodyBytes);
    const page = await appQueue(env, app).replayReadMeter();
    // One page never reads more than the budget plus one row (a row alone may exceed what is left).
    expect(page.bytes).toBeGreaterThan(0);
    expect(page.bytes).toBeLessThanOrEqual(REPLAY_PAGE_BYTES + bodyBytes + 4096);
    expect(page.rows).toBeLessThan(count);
  });

  it("listings read no bodies, page by a primary-key range, and filter by state through that state's index", async () => {
    const app = uniqueApp("list");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      insertResults(store, storage, 200, 2_000);
      for (let i = 0; i < 5; i++) {
        const id = newTaskId(1, Date.now() + i);
        store.insert(
          newTask(id, Date.now(), { etaMs: Date.now() + 60_000, request: { method: "GET", path: "/w", raw_query: "", header: {}, body: new Uint8Array(1000) } }),
        );
      }
      const first = store.list(null, 10, null);
      expect(first.every((row) => row.body.byteLength === 0 && row.response_body === null)).toBe(true);
      meter.reset();
      const middle = store.list(null, 10, first[9]!.id);
      expect(middle.length).toBe(10);
      expect(meter.rowsRead()).toBeLessThanOrEqual(12);
      meter.reset();
      const waiting = store.list(0, 10, null);
      expect(waiting.length).toBe(5);
      expect(meter.rowsRead()).toBeLessThanOrEqual(7);
    });
  });

  it("a time window (created_after, created_before) is a range of ids: only its tasks are read, and it pages with the cursor", async () => {
    const app = uniqueApp("window");
    await createApp(app);
    const hour = 3_600_000;
    const base = Math.floor(Date.now() / hour) * hour - 10 * hour;
    const ids = await sql(app)((storage) => {
      const store = new TaskStore(storage);
      // Three tasks in each of five hours.
      const made: string[] = [];
      for (let h = 0; h < 5; h++) {
        for (let i = 0; i < 3; i++) {
          const id = newTaskId(1, base + h * hour + i * 1000);
          store.insert(newTask(id, base + h * hour, { etaMs: Date.now() + 60_000 }));
          made.push(id);
        }
      }
      return made;
    });
    const list = async (query: string) => {
      const response = await call(`${CONTROL}/v1/tasks?app=${app}&${query}`);
      expect(response.status).toBe(200);
      return (await response.json()) as { tasks: TaskRecord[]; cursor: string | null };
    };
    const seconds = (ms: number) => Math.floor(ms / 1000);
    // Hours 1 and 2: six tasks, newest first; at or after is inclusive, before is exclusive.
    const window = `created_after=${seconds(base + hour)}&created_before=${seconds(base + 3 * hour)}`;
    const all = await list(window);
    expect(all.tasks.map((task) => task.id)).toEqual(ids.slice(3, 9).reverse());
    // Paged by 4: the cursor keeps the window.
    const first = await list(`${window}&limit=4`);
    expect(first.tasks.length).toBe(4);
    const second = await list(`${window}&limit=4&cursor=${first.cursor}`);
    expect([...first.tasks, ...second.tasks].map((task) => task.id)).toEqual(all.tasks.map((task) => task.id));
    expect(second.cursor).toBeNull();
    // Each bound alone.
    expect((await list(`created_after=${seconds(base + 4 * hour)}`)).tasks.map((task) => task.id)).toEqual(ids.slice(12).reverse());
    expect((await list(`created_before=${seconds(base + hour)}`)).tasks.map((task) => task.id)).toEqual(ids.slice(0, 3).reverse());
    // With a state filter too, and a window with nothing in it.
    expect((await list(`state=0&${window}`)).tasks.length).toBe(6);
    expect((await list(`created_after=${seconds(base + 5 * hour)}`)).tasks).toEqual([]);
    for (const bad of ["created_after=-1", "created_before=soon", "created_after=1.5"]) {
      const response = await call(`${CONTROL}/v1/tasks?app=${app}&${bad}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toMatch(/^invalid_created_(after|before)$/);
    }
  });

  it("a delivered task writes 4 rows to be accepted, 2 to begin and 3 to finish (each index entry written is a billed row)", async () => {
    const app = uniqueApp("rows");
    await createApp(app);
    const written = await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      // Counters and the seq are written once per group commit: left out here, as a group does.
      store.openCountBatch();
      const step = (run: () => void) => {
        meter.reset();
        run();
        return meter.rowsWritten();
      };
      const id = newTaskId(1, Date.now());
      const now = Date.now();
      const outcome = { status: 200, header: {}, body: new Uint8Array(100) };
      const rows = {
        // The row, its primary key, tasks_waiting, tasks_in_flight.
        accept: step(() => store.insert(newTask(id, now, { dispatchedMs: now }))),
        // The row and its tasks_running entry (SQLite counts the entries an update writes, not
        // those it removes: out of tasks_waiting and tasks_in_flight costs nothing).
        begin: step(() => store.markDoing(id, 1, now, now + 60_000, true)),
        // The row with the attempt's record (one write, not two), into tasks_succeeded and tasks_by_seq.
        finish: step(() => store.markFinished(id, 1, 10, now, undefined, { atMs: now, outcome, error: null, retryReason: null })),
      };
      store.closeCountBatch();
      return rows;
    });
    expect(written).toEqual({ accept: 4, begin: 2, finish: 3 });
  });

  it("a task submitted to an active app and delivered writes at most 11 rows in all, counters and seqs included", async () => {
    const app = uniqueApp("allin");
    await createApp(app);
    const meters = async () => ((await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }).meters;
    const before = await meters();
    const ids = await Promise.all(Array.from({ length: 60 }, (_, i) => submit(app, `/allin/${i}`, { body: "{}" })));
    for (const id of ids) await waitForState(id, [10]);
    const after = await meters();
    const perTask = (after["sql_rows_written"]! - before["sql_rows_written"]!) / ids.length;
    // 4 to accept, 2 to begin, 3 to finish; the rest is per group commit (counters, the latest seq).
    expect(perTask).toBeGreaterThanOrEqual(9);
    expect(perTask).toBeLessThanOrEqual(11);
  });

  it("listings of every state read only that state's tasks: doing, succeeded and failed beside a waiting backlog", async () => {
    const app = uniqueApp("states");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      const now = Date.now();
      const ids = Array.from({ length: 300 }, (_, i) => newTaskId(1, now - 10_000 + i));
      for (const id of ids) store.insert(newTask(id, now, { etaMs: now + 60_000 }));
      // 3 running, 4 succeeded, 5 failed; the rest wait.
      for (const id of ids.slice(0, 12)) store.markDoing(id, 1, now, now + 60_000, false);
      for (const id of ids.slice(3, 7)) store.markFinished(id, 1, 10, now);
      for (const id of ids.slice(7, 12)) store.markFinished(id, 1, 11, now);
      for (const [state, count] of [[1, 3], [10, 4], [11, 5], [0, 288]] as const) {
        meter.reset();
        const page = store.list(state, 10, null);
        expect(page.length).toBe(Math.min(10, count));
        expect(page.every((row) => row.state === state)).toBe(true);
        expect(page.map((row) => row.id)).toEqual([...page.map((row) => row.id)].sort().reverse());
        expect(meter.rowsRead()).toBeLessThanOrEqual(2 * Math.min(10, count) + 2);
      }
      expect(store.oldestWaitingCreatedMs()).toBe(now - 10_000 + 12);
    });
  });

  it("retention deletes by result order, the oldest results first, passing over a task with a notification pending; a pass with nothing to do reads little", async () => {
    const app = uniqueApp("retseq");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      const now = Date.now();
      const ids = Array.from({ length: 8 }, (_, i) => newTaskId(1, now - 100_000 + i));
      for (const id of ids) store.insert(newTask(id, now - 100_000));
      // Finished in the order 0..7, the first six long ago; the second one has a callback pending.
      ids.forEach((id, i) => store.markFinished(id, 0, 10, i < 6 ? now - 90_000 + i : now));
      store.addNotification(ids[1]!, "callback", "https://example.com/cb", now);
      const first = store.deleteFinishedBefore(now - 60_000, 3);
      const second = store.deleteFinishedBefore(now - 60_000, 3);
      const third = store.deleteFinishedBefore(now - 60_000, 3);
      const left = storage.exec<{ id: string }>("SELECT id FROM tasks ORDER BY id").toArray().map((row) => row.id);
      // 100 newer results behind: a pass with nothing more to delete stops at the first of them.
      for (let i = 0; i < 100; i++) {
        const id = newTaskId(1, now + i);
        store.insert(newTask(id, now));
        store.markFinished(id, 0, 10, now);
      }
      meter.reset();
      const idle = store.deleteFinishedBefore(now - 60_000, 500);
      return { first, second, third, left: left.map((id) => ids.indexOf(id)), idle, idleReads: meter.rowsRead() };
    });
    expect(result.idle).toEqual({ deleted: 0, more: false });
    expect(result.idleReads).toBeLessThanOrEqual(6);
    // 1 waits for its callback and is passed over: 0, 2, 3 in the first pass; 4, 5, then 6 too new.
    expect(result.first).toEqual({ deleted: 3, more: true });
    expect(result.second).toEqual({ deleted: 2, more: false });
    expect(result.third).toEqual({ deleted: 0, more: false });
    expect(result.left).toEqual([1, 6, 7]);
  });

  it("with thousands of notifications waiting (a receiver down), the outbox and the alarm read a few of them, not the table", async () => {
    const app = uniqueApp("ntfscan");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      const now = Date.now();
      for (let i = 0; i < 2000; i++) store.addNotification(newTaskId(1, now + i), "notify", "https://example.com/n", now + 60_000 + i);
      // Two due now, one sent long ago (its message lost), one sent just now.
      store.addNotification("due-1", "callback", "https://example.com/c", now - 10);
      store.addNotification("due-2", "callback", "https://example.com/c", now - 5);
      store.addNotification("lost", "callback", "https://example.com/c", now - 100_000);
      store.addNotification("sent", "callback", "https://example.com/c", now - 100);
      storage.exec("UPDATE notifications SET dispatched_ms = ? WHERE task_id = 'lost'", now - 90_000);
      storage.exec("UPDATE notifications SET dispatched_ms = ? WHERE task_id = 'sent'", now - 1_000);
      meter.reset();
      const due = store.dueNotifications(now, now - 30_000, 100).map((row) => row.task_id);
      const dueReads = meter.rowsRead();
      meter.reset();
      const wake = store.nextNotificationWakeMs(30_000);
      return { due, dueReads, wake, wakeReads: meter.rowsRead(), now };
    });
    expect(result.due).toEqual(["due-1", "due-2", "lost"]);
    expect(result.dueReads).toBeLessThanOrEqual(10);
    // The earliest: due-1's eta (the lost one's re-send time, 90 s ago + 30 s, is earlier still).
    expect(result.wake).toBe(result.now - 60_000);
    expect(result.wakeReads).toBeLessThanOrEqual(6);
  });

  it("a store from before the per-state indexes is migrated: the old indexes dropped, the new ones built, counts intact", async () => {
    const app = uniqueApp("migrate");
    await createApp(app);
    const after = await sql(app)((storage) => {
      const store = new TaskStore(storage);
      const now = Date.now();
      const ids = Array.from({ length: 5 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) store.insert(newTask(id, now));
      store.markFinished(ids[0]!, 0, 11, now);
      storage.exec("DROP INDEX tasks_waiting; DROP INDEX tasks_failed; DROP INDEX tasks_succeeded");
      storage.exec("CREATE INDEX tasks_by_state ON tasks(state, id); CREATE INDEX tasks_by_finish ON tasks(finished_ms) WHERE finished_ms IS NOT NULL");
      const reopened = new TaskStore(storage);
      const indexes = storage.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND name LIKE 'tasks_%' ORDER BY name").toArray();
      return { indexes: indexes.map((row) => row.name), counts: reopened.counts(), failed: reopened.list(11, 10, null).length, waiting: reopened.list(0, 10, null).length };
    });
    expect(after.indexes).toEqual(["tasks_by_dedup", "tasks_by_seq", "tasks_failed", "tasks_in_flight", "tasks_outbox", "tasks_running", "tasks_succeeded", "tasks_waiting"]);
    expect(after).toMatchObject({ counts: { waiting: 4, failed: 1 }, failed: 1, waiting: 4 });
  });

  it("counts come from counters kept with every write, not from a scan", async () => {
    const app = uniqueApp("counts");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const store = new TaskStore(meter.sql);
      insertResults(store, storage, 50, 10);
      meter.reset();
      const counts = store.counts();
      expect(meter.rowsRead()).toBeLessThanOrEqual(6);
      const truth = storage.exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state").toArray();
      expect(counts["success"]).toBe(truth.find((row) => row.state === 10)?.n);
    });
    // Through transitions and deletion, the counters follow.
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    await stub.finish(id, 1, err500);
    const app2 = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> };
    const truth = await sql(app)((storage) => storage.exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state").toArray());
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
        counters: new TaskStore(storage).counts(),
        truth: storage.exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state").toArray(),
      }));
      const count = (state: number) => truth.find((row) => row.state === state)?.n ?? 0;
      expect({ step, waiting: counters["waiting"], doing: counters["doing"], success: counters["success"], failed: counters["failed"] }).toEqual({
        step,
        waiting: count(0),
        doing: count(1),
        success: count(10),
        failed: count(11),
      });
      // The queue window's count of messages out, kept in memory, agrees with the table too
      // (both read in one turn of the object: the consumer may begin a task between two calls).
      const { kept, counted } = await runInDurableObject(appQueue(env, app), async (instance: AppQueue, state) => {
        const counted = state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks WHERE state = 0 AND dispatched_ms IS NOT NULL").one().n;
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

  it("GET /v1/apps with 100 ids and a state answers (one bound parameter, not 101)", async () => {
    const names = Array.from({ length: 100 }, (_, i) => `n${i}-${uniqueApp("x")}`.slice(0, 60));
    const response = await call(`${CONTROL}/v1/apps?ids=${names.join(",")}&state=Active`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { total: number }).total).toBe(0);
  });
});

describe("retention against what is accepted", () => {
  it("a delay past the app's retention is refused with 400 delay_exceeds_retention", async () => {
    const app = uniqueApp("delay");
    await createApp(app, { retention: 3600 });
    const refused = await call(`http://${app}.async.localhost/x`, { body: "{}", headers: { "asyncgate-delay": "2h" } });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: "delay_exceeds_retention" });
    const notBefore = String(Math.floor(Date.now() / 1000) + 7200);
    const refusedAt = await call(`http://${app}.async.localhost/x`, { body: "{}", headers: { "asyncgate-not-before": notBefore } });
    expect(await refusedAt.json()).toMatchObject({ code: "delay_exceeds_retention" });
    expect((await call(`http://${app}.async.localhost/x`, { body: "{}", headers: { "asyncgate-delay": "30m" } })).status).toBe(202);
  });

  it("a retry policy that can outlive retention is refused at create and at PATCH", async () => {
    const app = uniqueApp("rts");
    const long = { max_attempts: 100, min_backoff: 60, max_backoff: 3600 };
    const created = await call(`${CONTROL}/v1/apps`, { body: JSON.stringify({ name: app, origin: env.TEST_ORIGIN, retention: 3600, retry: long }) });
    expect(created.status).toBe(400);
    expect(await created.json()).toMatchObject({ code: "retention_too_short" });
    await createApp(app, { retention: 3600 });
    const patched = await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ retry: long }) });
    expect(await patched.json()).toMatchObject({ code: "retention_too_short" });
    const duration = await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ retry: { max_retry_duration: 7200 } }) });
    expect(await duration.json()).toMatchObject({ code: "retention_too_short" });
  });
});

describe("group commit isolation", () => {
  it("one submission that cannot be stored fails alone; the others of its group commit", async () => {
    const app = uniqueApp("iso");
    await createApp(app, { state: "Paused" });
    await sql(app)((storage) =>
      storage.exec("CREATE TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.path = '/poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"),
    );
    const stub = appQueue(env, app);
    const input = (path: string) => submitInput(path);
    // Submitted in one turn: one group, one transaction.
    const [first, poisoned, last] = await Promise.all([stub.submit(input("/ok1")), stub.submit(input("/poison")), stub.submit(input("/ok2"))]);
    expect(first.ok && last.ok).toBe(true);
    expect(poisoned).toMatchObject({ ok: false, error: { status: 503, code: "unavailable" } });
    if (first.ok && last.ok) {
      expect((await getTask(first.value.id)).request.path).toBe("/ok1");
      expect((await getTask(last.value.id)).request.path).toBe("/ok2");
    }
    // The rolled-back submission's count change was undone with it.
    const { stats } = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> };
    expect(stats["waiting"]).toBe(2);
  });

  it("seqs handed out in a group stay consecutive and are written once, also when one finish in it is undone", async () => {
    const app = uniqueApp("seqgroup");
    await createApp(app);
    const stub = appQueue(env, app);
    const ok: AttemptResult = { kind: "response", status: 200, header: {}, body: new Uint8Array() };
    const ids = [await parkedTask(app, "/a"), await parkedTask(app, "/poison"), await parkedTask(app, "/c")];
    const attempts: number[] = [];
    for (const id of ids) {
      const begun = await stub.begin(id);
      if (!begun.run) throw new Error(begun.reason);
      attempts.push(begun.delivery.attempt);
    }
    const before = await sql(app)((storage) => Number(storage.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'seq'").toArray()[0]?.value ?? "0"));
    await sql(app)((storage) =>
      storage.exec("CREATE TRIGGER poison BEFORE UPDATE OF state ON tasks WHEN NEW.path = '/poison' AND NEW.state = 10 BEGIN SELECT RAISE(ABORT, 'poisoned finish'); END"),
    );
    // One turn: one group, one transaction, a savepoint each.
    await Promise.allSettled(ids.map((id, i) => stub.finish(id, attempts[i]!, ok)));
    const seqs = await sql(app)((storage) => storage.exec<{ path: string; seq: number | null }>("SELECT path, seq FROM tasks ORDER BY path").toArray());
    const meta = await sql(app)((storage) => Number(storage.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'seq'").one().value));
    expect(seqs.find((row) => row.path === "/poison")!.seq).toBeNull();
    expect(seqs.filter((row) => row.path !== "/poison").map((row) => row.seq).sort()).toEqual([before + 1, before + 2]);
    expect(meta).toBe(before + 2);
    // The next result continues from there: no seq handed out twice, none skipped.
    await sql(app)((storage) => storage.exec("DROP TRIGGER poison"));
    const next = await finishParked(app, "/d");
    expect((await getTask(next)) as unknown as { state: number }).toMatchObject({ state: 10 });
    const last = await sql(app)((storage) => storage.exec<{ seq: number }>("SELECT seq FROM tasks WHERE id = ?", next).one().seq);
    expect(last).toBe(before + 3);
  });

  it("a full object answers 507 storage_full, not a retry", async () => {
    const app = uniqueApp("full");
    await createApp(app);
    await sql(app)((storage) =>
      storage.exec("CREATE TRIGGER full BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'SQLITE_FULL: database or disk is full'); END"),
    );
    const response = await call(`http://${app}.async.localhost/x`, { body: "{}" });
    expect(response.status).toBe(507);
    expect(await response.json()).toMatchObject({ code: "storage_full" });
  });

  it("a result that cannot be stored whole is stored without its body: the attempt counts, the task moves on", async () => {
    const app = uniqueApp("fin");
    await createApp(app);
    await sql(app)((storage) =>
      storage.exec(
        "CREATE TRIGGER toolarge BEFORE UPDATE OF response_body ON tasks WHEN length(NEW.response_body) > 0 BEGIN SELECT RAISE(ABORT, 'row too big'); END",
      ),
    );
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    expect(await stub.finish(id, 1, { kind: "response", status: 201, header: { "X-A": ["1"] }, body: new Uint8Array(10) })).toEqual({ applied: true, state: 10 });
    const task = await getTask(id);
    expect(task).toMatchObject({ state: 10, attempts: 1, response: { status_code: 201, body: "" } });
    // Written once in the end: the statistics count the attempt once.
    const stats = (await (await call(`${CONTROL}/v1/apps/${app}/stats`)).json()) as { last_hour: { attempts: number; successes: number } };
    expect(stats.last_hour).toEqual({ attempts: 1, successes: 1 });
  });
});

describe("outbox", () => {
  it("a message held in a consumer batch is not sent again; a lost one is, and re-sends are counted", async () => {
    const app = uniqueApp("claim");
    await createApp(app);
    const stub = appQueue(env, app);
    const held = await parkedTask(app, "/held");
    const lost = await parkedTask(app, "/lost");
    const stale = Date.now() - 5 * 60_000;
    await sql(app)((storage) => storage.exec("UPDATE tasks SET dispatched_ms = ? WHERE id IN (?, ?)", stale, held, lost));
    await stub.claim([held], 100);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rows = await sql(app)((storage) =>
      storage.exec<{ id: string; dispatched_ms: number | null; state: number }>("SELECT id, dispatched_ms, state FROM tasks WHERE id IN (?, ?)", held, lost).toArray(),
    );
    // The held one keeps a message (its stale mark moved to now); the lost one was sent afresh.
    expect(rows.find((row) => row.id === held)!.dispatched_ms).toBeGreaterThan(stale);
    await waitForState(lost, [10]);
    const stats = ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> }).stats;
    expect(stats["resends"]).toBe(1);
  });

  it("a queue that keeps refusing is not retried on every alarm: sends wait out a doubling backoff", async () => {
    const app = uniqueApp("backoff");
    await createApp(app);
    const stub = appQueue(env, app);
    const attempts = await runInDurableObject(stub, async (instance: AppQueue) => {
      const bindings = Reflect.get(instance, "env") as Env;
      const queue = bindings.TASKS;
      let sends = 0;
      const unavailable = async () => {
        sends++;
        throw new Error("queue unavailable");
      };
      bindings.TASKS = { send: unavailable, sendBatch: unavailable } as unknown as Queue;
      const seen: number[] = [];
      try {
        const submitted = await instance.submit(submitInput("/b"));
        if (!submitted.ok) throw new Error(submitted.error.message);
        seen.push(sends); // the send at submit
        for (let i = 0; i < 5; i++) await instance.alarm(); // alarms within the first backoff: no send
        seen.push(sends);
        await new Promise((resolve) => setTimeout(resolve, 1_100)); // the first backoff (≤ 1 s) has passed
        await instance.alarm(); // (the runtime's own alarm may have sent already)
        seen.push(sends);
        for (let i = 0; i < 5; i++) await instance.alarm(); // the next backoff is ≥ 1 s: no send
        seen.push(sends);
      } finally {
        bindings.TASKS = queue;
      }
      return seen;
    });
    const [atSubmit, inFirstBackoff, afterIt, inSecondBackoff] = attempts as [number, number, number, number];
    expect(atSubmit).toBe(1);
    expect(inFirstBackoff).toBe(atSubmit);
    expect(afterIt).toBeGreaterThan(inFirstBackoff);
    expect(inSecondBackoff).toBe(afterIt);
  });
});

describe("smaller guarantees", () => {
  it("a task whose notification is still pending stays past retention", async () => {
    const app = uniqueApp("keep");
    await createApp(app, { retention: 60 });
    const stub = appQueue(env, app);
    const id = await finishParked(app);
    await sql(app)((storage) => {
      storage.exec("INSERT INTO notifications (task_id, kind, url, eta_ms) VALUES (?, 'callback', 'http://127.0.0.1:9/cb', ?)", id, Date.now() + 3_600_000);
      storage.exec("UPDATE tasks SET finished_ms = ? WHERE id = ?", Date.now() - 120_000, id);
    });
    await runDurableObjectAlarm(stub);
    expect((await getTask(id)).state).toBe(10);
    await sql(app)((storage) => storage.exec("DELETE FROM notifications WHERE task_id = ?", id));
    await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(stub);
    expect((await call(`${CONTROL}/v1/task/${id}`)).status).toBe(404);
  });

  it("a name held by the registry but never configured is not stuck: create takes it, delete frees it", async () => {
    const stuck = uniqueApp("stuck");
    expect((await registry(env).register(defaultConfig(stuck, env.TEST_ORIGIN))).ok).toBe(true);
    expect((await call(`${CONTROL}/v1/apps`, { body: JSON.stringify({ name: stuck, origin: env.TEST_ORIGIN }) })).status).toBe(201);
    const other = uniqueApp("stuck2");
    expect((await registry(env).register(defaultConfig(other, env.TEST_ORIGIN))).ok).toBe(true);
    expect((await call(`${CONTROL}/v1/apps/${other}`, { method: "DELETE" })).status).toBe(404);
    const listed = (await (await call(`${CONTROL}/v1/apps?ids=${other}`)).json()) as { total: number };
    expect(listed.total).toBe(0);
  });

  it("retry of a failed task clears its seq and keeps attempt numbers growing", async () => {
    const app = uniqueApp("retry");
    await createApp(app, { retry: { max_attempts: 1 } });
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    expect(await stub.finish(id, 1, err500)).toEqual({ applied: true, state: 11 });
    // Paused, the retried task waits: it must not be a result while it does.
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Paused"}' });
    expect((await call(`${CONTROL}/v1/task/${id}/retry`, { method: "POST" })).status).toBe(200);
    const seq = await sql(app)((storage) => storage.exec<{ seq: number | null }>("SELECT seq FROM tasks WHERE id = ?", id).one().seq);
    expect(seq).toBeNull();
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Active"}' });
    const done = await waitForState(id, [10]);
    expect(done.attempts).toBe(2);
    // A stale finish of attempt 1 cannot touch the task again.
    expect((await stub.finish(id, 1, err500)).applied).toBe(false);
  });

  it(`retention works in batches of ${RETENTION_BATCH}: each alarm expires and deletes a bounded number, all expire in the end`, { timeout: 20_000 }, async () => {
    const app = uniqueApp("batch");
    await createApp(app, { retention: 60, state: "Paused" });
    const total = RETENTION_BATCH * 2 + 100;
    const bounded = await sql(app)((storage) => {
      const store = new TaskStore(storage);
      const old = Date.now() - 120_000;
      for (let i = 0; i < total; i++) {
        store.insert(newTask(newTaskId(1, old + i), old + i, { etaMs: old }));
      }
      const expiring = store.unfinishedCreatedBefore(Date.now() - 60_000, RETENTION_BATCH);
      for (const task of expiring) store.markFinished(task.id, task.state, 11, old + 1, "expired");
      return { expiring: expiring.length, deleted: store.deleteFinishedBefore(Date.now() - 60_000, RETENTION_BATCH) };
    });
    expect(bounded).toEqual({ expiring: RETENTION_BATCH, deleted: { deleted: RETENTION_BATCH, more: true } });
    await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => state.storage.setAlarm(Date.now()));
    const remaining = () => sql(app)((storage) => storage.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks WHERE state = 0").one().n);
    await vi.waitUntil(async () => (await runDurableObjectAlarm(appQueue(env, app)), (await remaining()) === 0), { timeout: 10_000, interval: 50 });
  });

  it("a finish RPC that fails is tried again by the consumer: the origin's answer is not lost", async () => {
    const app = uniqueApp("frpc");
    await createApp(app);
    const id = await parkedTask(app);
    let failures = 0;
    const flakyEnv = {
      ...env,
      APP_QUEUE: {
        idFromName: (name: string) => env.APP_QUEUE.idFromName(name),
        // The two methods a delivery calls; finish fails twice as an object being reset would.
        get: (objectId: DurableObjectId) => {
          const real = env.APP_QUEUE.get(objectId);
          return {
            begin: (taskId: string) => real.begin(taskId),
            finish: async (taskId: string, attempt: number, result: AttemptResult) => {
              if (failures < 2) {
                failures++;
                throw new Error("Durable Object reset because its code was updated.");
              }
              return real.finish(taskId, attempt, result);
            },
          };
        },
      },
    } as unknown as Env;
    await deliverTask({ app, id }, flakyEnv);
    expect(failures).toBe(2);
    expect((await getTask(id)).state).toBe(10);
  });

  it("feed seqs of a re-created app continue above the old app's", async () => {
    const app = uniqueApp("seq");
    await createApp(app);
    for (let i = 0; i < 3; i++) await finishParked(app);
    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "DELETE" })).status).toBe(200);
    await createApp(app);
    const id = await submit(app, "/again", { body: "{}" });
    await waitForState(id, [10]);
    const seq = await sql(app)((storage) => storage.exec<{ seq: number }>("SELECT seq FROM tasks WHERE id = ?", id).one().seq);
    expect(seq).toBe(4);
  });
});
