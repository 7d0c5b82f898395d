// Proves a store from before the per-state indexes is migrated when opened: old indexes dropped, new ones built, counts intact.
import { describe, expect, it } from "vitest";
import { TaskStore } from "../../src/app/task-store";
import { newTaskId } from "../../src/shared/task-id";
import { createApp, newTask, sql, uniqueApp } from "./helpers";

describe("migration", () => {
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
});
