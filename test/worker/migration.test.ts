// Proves the schema is brought up to date by version: a store from before the per-state indexes (and before versions) is migrated when opened, old indexes dropped, new ones built, counts intact; a current one runs no DDL.
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { newTaskId } from "../../src/shared/task-id";
import { SCHEMA_VERSION } from "../../src/app/store/schema";
import { createApp, metered, newTask, sql, uniqueApp } from "./helpers";

describe("migration", () => {
  it("a store from before the per-state indexes is migrated: the old indexes dropped, the new ones built, counts intact", async () => {
    const app = uniqueApp("migrate");
    await createApp(app);
    const after = await sql(app)((storage) => {
      const store = openStore(storage).tasks;
      const now = Date.now();
      const ids = Array.from({ length: 5 }, (_, i) => newTaskId(1, now + i));
      for (const id of ids) store.insert(newTask(id, now));
      store.markFinished(ids[0]!, 0, 11, now);
      storage.exec("DROP INDEX tasks_waiting; DROP INDEX tasks_failed; DROP INDEX tasks_succeeded");
      storage.exec(
        "CREATE INDEX tasks_by_state ON tasks(state, id); CREATE INDEX tasks_by_finish ON tasks(finished_ms) WHERE finished_ms IS NOT NULL",
      );
      // Stores from before the schema was versioned keep no version.
      storage.exec("DELETE FROM meta WHERE key = 'schema_version'");
      const reopened = openStore(storage).tasks;
      const indexes = storage
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND name LIKE 'tasks_%' ORDER BY name",
        )
        .toArray();
      return {
        indexes: indexes.map((row) => row.name),
        counts: reopened.counts(),
        failed: reopened.list(11, 10, null).length,
        waiting: reopened.list(0, 10, null).length,
      };
    });
    expect(after.indexes).toEqual([
      "tasks_by_dedup",
      "tasks_by_seq",
      "tasks_failed",
      "tasks_in_flight",
      "tasks_outbox",
      "tasks_running",
      "tasks_succeeded",
      "tasks_waiting",
    ]);
    expect(after).toMatchObject({ counts: { waiting: 4, failed: 1 }, failed: 1, waiting: 4 });
  });

  it("a store at the current schema version runs no DDL when opened: what is not in its version stays as it is", async () => {
    const app = uniqueApp("schemaver");
    await createApp(app);
    const after = await sql(app)((storage) => {
      storage.exec("DROP INDEX tasks_waiting");
      const meter = metered(storage);
      openStore(meter.sql);
      const indexes = storage
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'tasks_waiting'")
        .toArray();
      const version = storage
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
        .one().value;
      // Put back what the test took, so the object's own queries still find their index.
      storage.exec("CREATE INDEX tasks_waiting ON tasks(id) WHERE state = 0");
      return { rebuilt: indexes.length, written: meter.rowsWritten(), version: Number(version) };
    });
    expect(after).toEqual({ rebuilt: 0, written: 0, version: SCHEMA_VERSION });
  });
});
