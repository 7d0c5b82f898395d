// Proves the app's object reads a bounded number of rows: a 52 MB replay paged by bytes (and acknowledged), listings by key range and per-state index, time windows, due notifications.
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { REPLAY_PAGE_BYTES, openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import { newTaskId } from "../../src/shared/task-id";
import type { TaskRecord } from "../../src/shared/types";
import {
  CONTROL,
  call,
  createApp,
  insertResults,
  metered,
  newTask,
  signedRequest,
  sql,
  testAppQueue,
  uniqueApp,
} from "./helpers";

describe("bounded reads", () => {
  it(
    "a resume from since=0 over 50 MB of results arrives whole and in order, reading at most ~8 MB per turn",
    { timeout: 30_000 },
    async () => {
      const app = uniqueApp("replay");
      await createApp(app);
      const count = 80;
      const bodyBytes = 650_000; // 80 × 650 KB ≈ 52 MB of results
      await sql(app)((storage) => insertResults(openStore(storage).tasks, storage, count, bodyBytes));
      const response = await exports.default.fetch(
        await signedRequest(`${CONTROL}/v1/tasks?app=${app}&since=0`, { headers: { upgrade: "websocket" } }),
      );
      expect(response.status).toBe(101);
      const ws = response.webSocket!;
      const results: (TaskRecord & { seq: number })[] = [];
      const all = new Promise<void>((resolve) =>
        ws.addEventListener("message", (event) => {
          const frame = JSON.parse(event.data as string) as (TaskRecord & { seq: number }) | { type: string };
          if ("type" in frame) return;
          results.push(frame);
          ws.send(`ACK ${frame.seq}`); // read: the replay, paced by acknowledgements, goes on
          if (results.length === count) resolve();
        }),
      );
      ws.accept();
      await all;
      ws.close(1000);
      expect(results.map((result) => result.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
      for (const result of results) expect(atob(result.response!.body).length).toBe(bodyBytes);
      const page = await testAppQueue(app).replayReadMeter();
      // One page never reads more than the budget plus one row (a row alone may exceed what is left).
      expect(page.bytes).toBeGreaterThan(0);
      expect(page.bytes).toBeLessThanOrEqual(REPLAY_PAGE_BYTES + bodyBytes + 4096);
      expect(page.rows).toBeLessThan(count);
    },
  );

  it("listings read no bodies, page by a primary-key range, and filter by state through that state's index", async () => {
    const app = uniqueApp("list");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store, reads } = openStore(meter.sql);
      insertResults(store, storage, 200, 2_000);
      for (let i = 0; i < 5; i++) {
        const id = newTaskId(1, Date.now() + i);
        store.insert(
          newTask(id, Date.now(), {
            etaMs: Date.now() + 60_000,
            request: { method: "GET", path: "/w", raw_query: "", header: {}, body: new Uint8Array(1000) },
          }),
        );
      }
      const first = reads.list(null, 10, null);
      expect(first.every((row) => row.body.byteLength === 0 && row.response_body === null)).toBe(true);
      meter.reset();
      const middle = reads.list(null, 10, first[9]!.id);
      expect(middle.length).toBe(10);
      expect(meter.rowsRead()).toBeLessThanOrEqual(12);
      // Waiting tasks have no index: they are read by the primary key from where the outbox's scan
      // stands, past the results (one pass of the outbox, as the object makes after every commit).
      expect(store.dueUnsent(Date.now(), 100)).toEqual([]);
      meter.reset();
      const waiting = reads.list(0, 10, null);
      expect(waiting.length).toBe(5);
      // The five, the end of the scan, and the (empty) index of parked tasks.
      expect(meter.rowsRead()).toBeLessThanOrEqual(8);
    });
  });

  it("a time window (created_after, created_before) is a range of ids: only its tasks are read, and it pages with the cursor", async () => {
    const app = uniqueApp("window");
    await createApp(app);
    const hour = 3_600_000;
    const base = Math.floor(Date.now() / hour) * hour - 10 * hour;
    const ids = await sql(app)((storage) => {
      const store = openStore(storage).tasks;
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
    expect((await list(`created_after=${seconds(base + 4 * hour)}`)).tasks.map((task) => task.id)).toEqual(
      ids.slice(12).reverse(),
    );
    expect((await list(`created_before=${seconds(base + hour)}`)).tasks.map((task) => task.id)).toEqual(
      ids.slice(0, 3).reverse(),
    );
    // With a state filter too, and a window with nothing in it.
    expect((await list(`state=0&${window}`)).tasks.length).toBe(6);
    expect((await list(`created_after=${seconds(base + 5 * hour)}`)).tasks).toEqual([]);
    for (const bad of ["created_after=-1", "created_before=soon", "created_after=1.5"]) {
      const response = await call(`${CONTROL}/v1/tasks?app=${app}&${bad}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toMatch(/^invalid_created_(after|before)$/);
    }
  });

  it("listings of waiting, doing and failed tasks read only that state's tasks; succeeded ones are a primary-key scan", async () => {
    const app = uniqueApp("states");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store, reads } = openStore(meter.sql);
      const now = Date.now();
      const ids = Array.from({ length: 300 }, (_, i) => newTaskId(1, now - 10_000 + i));
      for (const id of ids) store.insert(newTask(id, now, { etaMs: now + 60_000 }));
      // 3 running, 4 succeeded, 5 failed; the rest wait.
      for (const id of ids.slice(0, 12)) store.markDoing(id, 1, now, now + 60_000);
      for (const id of ids.slice(3, 7)) store.markFinished(id, 1, 10, now);
      for (const id of ids.slice(7, 12)) store.markFinished(id, 1, 11, now);
      for (const [state, count] of [
        [1, 3],
        [10, 4],
        [11, 5],
        [0, 288],
      ] as const) {
        meter.reset();
        const page = reads.list(state, 10, null);
        expect(page.length).toBe(Math.min(10, count));
        expect(page.every((row) => row.state === state)).toBe(true);
        expect(page.map((row) => row.id)).toEqual([...page.map((row) => row.id)].sort().reverse());
        // Succeeded tasks (most of a table) have no index of their own, which would cost a row
        // written per task: they are listed by a primary-key scan that passes over newer tasks of
        // other states (here the whole waiting backlog, all newer).
        const bound = state === 10 ? ids.length + 2 : 2 * Math.min(10, count) + 2;
        expect(meter.rowsRead()).toBeLessThanOrEqual(bound);
      }
      expect(reads.oldestWaitingCreatedMs()).toBe(now - 10_000 + 12);
    });
  });

  it("the outbox reads past the queue window once, not on every pass, and finds again a task whose message is gone", async () => {
    const app = uniqueApp("outboxfloor");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store } = openStore(meter.sql);
      const now = Date.now();
      const ids = Array.from({ length: 400 }, (_, i) => newTaskId(1, now - 10_000 + i));
      for (const [i, id] of ids.entries()) store.insert(newTask(id, now - 10_000 + i, { etaMs: now - 10_000 + i }));
      // 390 sent (a window), in passes of 100 as the outbox takes them.
      for (let sent = 0; sent < 390; sent += 100)
        store.markDispatched(store.dueUnsent(now, Math.min(100, 390 - sent)), now);
      meter.reset();
      expect(store.dueUnsent(now, 100)).toEqual(ids.slice(390));
      // From where the last pass stopped: the 10 unsent and the last pass's 90, not the 390.
      expect(meter.rowsRead()).toBeLessThanOrEqual(100 + 2);
      store.markDispatched(ids.slice(390), now);
      meter.reset();
      expect(store.dueUnsent(now, 100)).toEqual([]);
      expect(meter.rowsRead()).toBeLessThanOrEqual(12);
      // A message refused (or dead-lettered) far behind: found again.
      store.clearDispatched([ids[5]!]);
      expect(store.dueUnsent(now, 100)).toEqual([ids[5]]);
      store.markDispatched([ids[5]!], now);
      // A retry due before the floor (an attempt ended early) is found too.
      store.markDoing(ids[7]!, 1, now, now + 60_000);
      store.markWaiting(ids[7]!, now - 20_000, { atMs: now, outcome: null, error: "timeout", retryReason: "timeout" });
      expect(store.dueUnsent(now, 100)).toEqual([ids[7]]);
    });
  });

  it("with thousands of notifications waiting (a receiver down), the outbox and the alarm read a few of them, not the table", async () => {
    const app = uniqueApp("ntfscan");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const store = openStore(meter.sql).notifications;
      const now = Date.now();
      for (let i = 0; i < 2000; i++)
        store.add(newTaskId(1, now + i), "notify", "https://example.com/n", now + 60_000 + i);
      // Two due now, one sent long ago (its message lost), one sent just now.
      store.add("due-1", "callback", "https://example.com/c", now - 10);
      store.add("due-2", "callback", "https://example.com/c", now - 5);
      store.add("lost", "callback", "https://example.com/c", now - 100_000);
      store.add("sent", "callback", "https://example.com/c", now - 100);
      storage.exec("UPDATE notifications SET dispatched_ms = ? WHERE task_id = 'lost'", now - 90_000);
      storage.exec("UPDATE notifications SET dispatched_ms = ? WHERE task_id = 'sent'", now - 1_000);
      meter.reset();
      const due = store.due(now, now - 30_000, 100).map((row) => row.task_id);
      const dueReads = meter.rowsRead();
      meter.reset();
      const wake = store.nextWakeMs(30_000, now); // every send here counts as one from before the wake-up
      return { due, dueReads, wake, wakeReads: meter.rowsRead(), now };
    });
    expect(result.due).toEqual(["due-1", "due-2", "lost"]);
    expect(result.dueReads).toBeLessThanOrEqual(10);
    // The earliest: due-1's eta (the lost one's re-send time, 90 s ago + 30 s, is earlier still).
    expect(result.wake).toBe(result.now - 60_000);
    expect(result.wakeReads).toBeLessThanOrEqual(6);
  });
});
