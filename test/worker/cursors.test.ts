// Proves the store's reads leave no statement running, even where they stop early (a page, a budget, the first match): SQLite refuses DROP TABLE / DROP INDEX while any statement runs, and workerd ends a partly read cursor's only when it is garbage-collected. A DROP right after each read succeeds.
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { newTaskId } from "../../src/shared/task-id";
import { createApp, insertResults, newTask, sql, uniqueApp } from "./helpers";

describe("cursors", () => {
  it("after the outbox's passes, listings, the replay and the oldest waiting task, a table can be dropped", async () => {
    const app = uniqueApp("cursors");
    await createApp(app);
    const dropped = await sql(app)((storage) => {
      const { tasks: store, reads } = openStore(storage);
      const now = Date.now();
      insertResults(store, storage, 50, 10);
      store.checkpoint(now, true);
      insertResults(store, storage, 50, 10);
      for (let i = 0; i < 300; i++) store.insert(newTask(newTaskId(1, now + i), now));
      for (let i = 0; i < 40; i++) store.insert(newTask(newTaskId(1, now + 1000 + i), now, { etaMs: now + 7_200_000 }));
      const reads_: [string, () => unknown][] = [
        ["dueUnsent", () => store.markDispatched(store.dueUnsent(now, 10), now)],
        ["dueUnsent (parked)", () => store.dueUnsent(now + 7_200_000, 5)],
        ["nextWakeMs", () => store.nextWakeMs(30_000, now, 60_000, false, false)],
        ["list waiting", () => reads.list(0, 5, null)],
        ["list succeeded", () => reads.list(10, 5, null)],
        ["list all", () => reads.list(null, 5, null)],
        ["replay", () => reads.finishedSince(0, 100)],
        ["oldest waiting", () => reads.oldestWaitingCreatedMs()],
        ["expiry", () => store.unfinishedStartedBefore(now + 1, 5)],
      ];
      const failures: string[] = [];
      for (const [i, [name, read]] of reads_.entries()) {
        read();
        // A table of its own per read: one left behind by a failed drop does not fail the next.
        try {
          storage.exec(`CREATE TABLE probe_${i} (x INTEGER)`);
          storage.exec(`DROP TABLE probe_${i}`);
        } catch (error) {
          failures.push(`${name}: ${String(error)}`);
        }
      }
      return failures;
    });
    expect(dropped).toEqual([]);
  });
});
