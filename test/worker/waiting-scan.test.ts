// Proves waiting tasks are found without an index entry of their own: near ones by a scan of the primary key from a cursor (a delayed one kept in memory, not read again; with that memory full none is lost), parked ones by their index, a task made unsent again found behind the cursor, and after a restart the scan starts at the checkpoint's bound.
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { MessagesOut } from "../../src/app/store/messages-out";
import { RunningAttempts } from "../../src/app/store/running";
import { newTaskId } from "../../src/shared/task-id";
import { createApp, insertResults, metered, newTask, sql, uniqueApp } from "./helpers";

const failed = { atMs: 0, outcome: null, error: "boom", retryReason: "timeout" } as const;

describe("waiting tasks without an index", () => {
  it("a task due in 30 s does not hold back the due ones after it, is not read again on every pass, and goes when due", async () => {
    const app = uniqueApp("nearscan");
    await createApp(app);
    await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store } = openStore(meter.sql);
      const now = Date.now();
      const delayed = newTaskId(1, now);
      store.insert(newTask(delayed, now, { etaMs: now + 30_000 }));
      const due = Array.from({ length: 50 }, (_, i) => newTaskId(1, now + 1 + i));
      for (const id of due) store.insert(newTask(id, now));
      expect(store.dueUnsent(now, 100)).toEqual(due);
      store.markDispatched(due, now);
      expect(store.nextWakeMs(30_000, now, 86_400_000, false, false)).toBe(now + 30_000);
      meter.reset();
      expect(store.dueUnsent(now + 1_000, 100)).toEqual([]);
      // Nothing new since the last pass: the end of the table, not the 51 rows again.
      expect(meter.rowsRead()).toBeLessThanOrEqual(2);
      expect(store.dueUnsent(now + 30_000, 100)).toEqual([delayed]);
    });
  });

  it("a parked task (due long after its creation) costs its index entry, waits for its time, and is listed, counted and purged like any waiting task", async () => {
    const app = uniqueApp("parked");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const meter = metered(storage);
      const { tasks: store, reads } = openStore(meter.sql);
      const now = Date.now();
      insertResults(store, storage, 100, 10);
      const parked = newTaskId(1, now);
      meter.reset();
      store.insert(newTask(parked, now, { etaMs: now + 2 * 3_600_000 }));
      const accepted = meter.rowsWritten();
      const near = newTaskId(1, now + 1);
      store.insert(newTask(near, now + 1));
      expect(store.dueUnsent(now + 1, 100)).toEqual([near]);
      store.markDispatched([near], now + 1);
      const before = store.dueUnsent(now + 3_600_000, 100);
      const atItsTime = store.dueUnsent(now + 2 * 3_600_000, 100);
      store.clearDispatched(atItsTime);
      const listed = reads.list(0, 10, null).map((row) => row.id);
      const oldest = reads.oldestWaitingCreatedMs();
      const purged = store.deleteWaiting(now + 10, "", 100).deleted;
      return { accepted, before, atItsTime, listed, oldest, purged, parked, near, now };
    });
    expect(result.accepted).toBe(2); // the row and its tasks_parked entry
    expect(result.before).toEqual([]);
    expect(result.atItsTime).toEqual([result.parked]);
    expect(result.listed).toEqual([result.near, result.parked]);
    expect(result.oldest).toBe(result.now);
    expect(result.purged.sort()).toEqual([result.parked, result.near].sort());
  });

  it("with no room to keep tasks not due yet, they hold the cursor, the due ones behind them still go, and none is lost", async () => {
    const app = uniqueApp("laterfull");
    await createApp(app);
    const passes = await sql(app)((storage) => {
      openStore(storage); // the tables
      const now = Date.now();
      const running = new RunningAttempts();
      // Room for two: the other delayed tasks stay in the table, read again until their time.
      const out = new MessagesOut(storage, running, () => null, now, 2);
      const insert = (id: string, etaMs: number) =>
        storage.exec(
          "INSERT INTO tasks (id, req_id, method, path, raw_query, header, body, created_ms, state, eta_ms) VALUES (?, 'r', 'POST', '/', '', '{}', X'', ?, 0, ?)",
          id,
          now,
          etaMs,
        );
      const delayed = Array.from({ length: 6 }, (_, i) => newTaskId(1, now + i));
      for (const [i, id] of delayed.entries()) insert(id, now + 10_000 + i);
      const due = Array.from({ length: 3 }, (_, i) => newTaskId(1, now + 10 + i));
      for (const id of due) insert(id, now);
      const taken = (atMs: number) => {
        const ids = out.dueUnsent(atMs, 100);
        out.markDispatched(ids, atMs);
        return ids;
      };
      return {
        first: taken(now),
        wake: out.firstUnsentEtaMs(now),
        early: taken(now + 5_000),
        later: taken(now + 10_005),
        delayed,
        due,
        now,
      };
    });
    expect(passes.first).toEqual(passes.due);
    expect(passes.wake).toBe(passes.now + 10_000);
    expect(passes.early).toEqual([]);
    expect(passes.later.sort()).toEqual(passes.delayed.sort());
  });

  it("a task made unsent again behind the cursor is found: a refused message, a retry, a redrive", async () => {
    const app = uniqueApp("behind");
    await createApp(app);
    const found = await sql(app)((storage) => {
      const { tasks: store } = openStore(storage);
      const now = Date.now();
      const ids = Array.from({ length: 20 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) store.insert(newTask(id, now));
      store.markDispatched(store.dueUnsent(now, 100), now);
      store.clearDispatched([ids[3]!]);
      const refused = store.dueUnsent(now, 100);
      store.markDispatched(refused, now);
      store.markDoing(ids[4]!, 1, now, now + 60_000);
      store.markWaiting(ids[4]!, now + 5_000, { ...failed, atMs: now });
      const retryEarly = store.dueUnsent(now, 100);
      const retry = store.dueUnsent(now + 5_000, 100);
      store.markDispatched(retry, now + 5_000);
      store.markDoing(ids[5]!, 1, now, now + 60_000);
      store.markFinished(ids[5]!, 1, 11, now, "boom");
      store.resetForRetry(ids[5]!, now + 6_000, 3);
      const redrive = store.dueUnsent(now + 6_000, 100);
      return { refused, retryEarly, retry, redrive, ids };
    });
    expect(found.refused).toEqual([found.ids[3]]);
    expect(found.retryEarly).toEqual([]);
    expect(found.retry).toEqual([found.ids[4]]);
    expect(found.redrive).toEqual([found.ids[5]]);
  });

  it("after a restart the scan starts at the checkpoint's bound, not at the first row, and finds what waited unsent behind the cursor", async () => {
    const app = uniqueApp("restartscan");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const first = openStore(storage).tasks;
      insertResults(first, storage, 300, 10);
      const now = Date.now();
      const ids = Array.from({ length: 4 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) first.insert(newTask(id, now));
      first.markDispatched(first.dueUnsent(now, 100), now);
      // ids[0] runs, ids[1] finished, ids[2]'s message is out, ids[3] was turned away (unsent again).
      first.markDoing(ids[0]!, 1, now, now + 60_000);
      first.markDoing(ids[1]!, 1, now, now + 60_000);
      first.markFinished(ids[1]!, 1, 10, now);
      first.clearDispatched([ids[3]!]);
      first.checkpoint(now, true);
      // A redrive after the checkpoint, of a task behind the cursor (after the results): the
      // checkpoint is written again with it.
      const failedEarly = newTaskId(1, now - 600);
      storage.exec(
        "INSERT INTO tasks (id, req_id, method, path, raw_query, header, body, created_ms, state, eta_ms, seq, finished_ms) VALUES (?, 'r', 'POST', '/', '', '{}', X'', ?, 11, ?, 0, ?)",
        failedEarly,
        now - 600,
        now - 600,
        now - 600,
      );
      first.resetForRetry(failedEarly, now, 3);

      // The object restarts: what was in memory is gone.
      const meter = metered(storage);
      const second = openStore(meter.sql).tasks;
      const resent = second.dueUnsent(now + 1, 100);
      const reads = meter.rowsRead();
      return { resent, reads, ids, failedEarly };
    });
    // Sent again at once: the turned-away one and the redriven one. The one out and the one
    // running at the checkpoint are taken as sent then: they go again once that counts as lost.
    expect(result.resent.sort()).toEqual([result.ids[3], result.failedEarly].sort());
    // The checkpoint, the counts' rebuild, the presumed messages and the scan: not the 300 results.
    expect(result.reads).toBeLessThan(40);
  });
});
