// Proves results are numbered without an index entry each: the replay reads the results log (a row per checkpoint) and its tail in memory, exactly, across restarts (the tail found again by a scan from the checkpoint's waiting bound; a parked task's finish below it writes the checkpoint), a retried result's old entry is passed over, a rolled-back group keeps its tail, and retention deletes the log's rows with the results.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import type { TestAppQueue } from "./test-app-queue";
import { newTaskId } from "../../src/shared/task-id";
import { createApp, newTask, sql, uniqueApp } from "./helpers";

/** The replay from `since`, as [id, seq] pairs, every page. */
function replay(reads: ReturnType<typeof openStore>["reads"], since = 0): [string, number][] {
  const all: [string, number][] = [];
  for (;;) {
    const page = reads.finishedSince(all.length ? all[all.length - 1]![1] : since);
    all.push(...page.rows.map((row): [string, number] => [row.id, row.seq!]));
    if (page.done) return all;
  }
}

const logRows = (storage: SqlStorage) => storage.exec<{ n: number }>("SELECT COUNT(*) AS n FROM results_log").one().n;

describe("the results log", () => {
  it("the replay is exact across checkpoint rows, the tail in memory and a restart that lost the tail", async () => {
    const app = uniqueApp("logreplay");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const { tasks: store } = openStore(storage);
      const now = Date.now();
      const ids = Array.from({ length: 30 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) store.insert(newTask(id, now));
      // Ten results, a checkpoint (a log row), ten more, a checkpoint, five more left in memory.
      ids.slice(0, 10).forEach((id) => store.markFinished(id, 0, 10, now));
      store.checkpoint(now, true);
      ids.slice(10, 20).forEach((id) => store.markFinished(id, 0, 11, now, "boom"));
      store.checkpoint(now + 10_000, true);
      ids.slice(20, 25).forEach((id) => store.markFinished(id, 0, 10, now));
      const before = replay(openStore(storage).reads);
      // The object restarts: the tail is found again by the scan from the checkpoint's bound.
      const { tasks: second, reads } = openStore(storage);
      second.markFinished(ids[25]!, 0, 10, now);
      return { before, after: replay(reads), from12: replay(reads, 12), rows: logRows(storage), ids };
    });
    const expected = result.ids.slice(0, 26).map((id, i): [string, number] => [id, i + 1]);
    expect(result.after).toEqual(expected);
    expect(result.before).toEqual(expected.slice(0, 25));
    expect(result.from12).toEqual(expected.slice(12));
    expect(result.rows).toBe(2);
  });

  it("a parked task finishing below the checkpoint's waiting bound writes the checkpoint: a restart still replays it", async () => {
    const app = uniqueApp("logparked");
    await createApp(app);
    const result = await sql(app)((storage) => {
      const { tasks: store } = openStore(storage);
      const now = Date.now();
      const parked = newTaskId(1, now);
      store.insert(newTask(parked, now, { etaMs: now + 2 * 3_600_000 }));
      const near = Array.from({ length: 5 }, (_, i) => newTaskId(1, now + 1 + i));
      for (const id of near) store.insert(newTask(id, now));
      // The outbox passes the near tasks; they finish; the checkpoint's bound is past them all.
      store.markDispatched(store.dueUnsent(now, 100), now);
      near.forEach((id) => store.markFinished(id, 0, 10, now));
      store.checkpoint(now, true);
      const rowsBefore = logRows(storage);
      // The parked task, below that bound, is cancelled (a finish), in a group of its own.
      store.openCountBatch();
      store.markFinished(parked, 0, 11, now + 1, "canceled");
      store.closeCountBatch(now + 1);
      store.commitCountBatch();
      const rowsAfter = logRows(storage);
      // The object restarts.
      return { replayed: replay(openStore(storage).reads).map(([id]) => id), rowsBefore, rowsAfter, parked, near };
    });
    expect(result.rowsAfter).toBe(result.rowsBefore + 1);
    expect(result.replayed).toEqual([...result.near, result.parked]);
  });

  it("a retried result is replayed once, at its new seq; a group rolled back after writing the checkpoint leaves the tail in memory", async () => {
    const app = uniqueApp("logretry");
    await createApp(app);
    const result = await runInDurableObject(appQueue(env, app), (instance: TestAppQueue, state) => {
      const { tasks: store, reads } = openStore(state.storage.sql);
      const now = Date.now();
      const ids = Array.from({ length: 3 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) store.insert(newTask(id, now));
      store.markFinished(ids[0]!, 0, 11, now, "boom");
      store.markFinished(ids[1]!, 0, 10, now);
      store.checkpoint(now, true);
      store.resetForRetry(ids[0]!, now, 3);
      store.markFinished(ids[0]!, 0, 10, now + 1);
      // A group that finishes a task and writes the checkpoint (with the tail), then fails.
      store.openCountBatch();
      try {
        state.storage.transactionSync(() => {
          store.markFinished(ids[2]!, 0, 10, now + 2);
          store.closeCountBatch(now + 60_000);
          throw new Error("the commit fails");
        });
      } catch {
        store.discardCountBatch();
      }
      const replayed = replay(reads);
      const rows = logRows(state.storage.sql);
      instance.resetCaches();
      return { replayed, rows, ids };
    });
    // ids[0]'s first result (seq 1) is passed over; ids[2]'s never happened; seq 3 is still in memory.
    expect(result.replayed).toEqual([
      [result.ids[1], 2],
      [result.ids[0], 3],
    ]);
    expect(result.rows).toBe(1);
  });
});
