// Proves the schema is brought up to date by version: a store from before the per-state indexes (and before versions) is migrated when opened, old indexes dropped, new ones built, counts intact; a current one runs no DDL.
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { newTaskId } from "../../src/shared/task-id";
import { SCHEMA_VERSION, TABLES_V1 } from "../../src/app/store/schema";
import { createApp, metered, newTask, sql, uniqueApp } from "./helpers";

/** Rebuilds the tasks table as version 1 built it (a rowid table with a TEXT key, every index of the day), rows kept. */
function asVersion1(storage: SqlStorage): void {
  storage.exec("CREATE TABLE old_rows AS SELECT * FROM tasks");
  storage.exec("DROP TABLE tasks");
  storage.exec(TABLES_V1);
  const columns = "id, req_id, method, path, raw_query, header, body, created_ms, state, eta_ms, seq, finished_ms";
  storage.exec(`INSERT INTO tasks (${columns}) SELECT ${columns} FROM old_rows`);
  storage.exec("DROP TABLE old_rows");
}

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
      asVersion1(storage);
      storage.exec("DROP INDEX tasks_waiting; DROP INDEX tasks_failed; DROP INDEX tasks_succeeded");
      storage.exec(
        "CREATE INDEX tasks_by_state ON tasks(state, id); CREATE INDEX tasks_by_finish ON tasks(finished_ms) WHERE finished_ms IS NOT NULL",
      );
      // Stores from before the schema was versioned keep no version.
      storage.exec("DELETE FROM meta WHERE key = 'schema_version'");
      const { tasks: reopened, reads } = openStore(storage);
      const indexes = storage
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND name LIKE 'tasks_%' ORDER BY name",
        )
        .toArray();
      return {
        indexes: indexes.map((row) => row.name),
        counts: reopened.counts(),
        failed: reads.list(11, 10, null).length,
        waiting: reads.list(0, 10, null).length,
      };
    });
    expect(after.indexes).toEqual(["tasks_by_dedup", "tasks_failed", "tasks_parked", "tasks_restarted"]);
    expect(after).toMatchObject({ counts: { waiting: 4, failed: 1 }, failed: 1, waiting: 4 });
  });

  it("a version-1 store with tasks in every state is upgraded: nothing lost, a running task waits with its attempt taken back and that attempt's finish applies once", async () => {
    const app = uniqueApp("v1store");
    await createApp(app);
    const after = await sql(app)((storage) => {
      const store = openStore(storage).tasks;
      const now = Date.now();
      const [waiting, running, succeeded] = Array.from({ length: 3 }, (_, i) => newTaskId(1, now - 1000 + i));
      for (const id of [waiting!, running!, succeeded!]) store.insert(newTask(id, now - 1000));
      store.markFinished(succeeded!, 0, 10, now - 500);
      asVersion1(storage);
      // As version 1 kept them: a running task in its row (state 1, its attempt counted, a lease),
      // the counters by state in a table, the latest seq in meta.
      storage.exec("UPDATE tasks SET state = 1, attempts = 1, lease_ms = ? WHERE id = ?", now + 60_000, running!);
      storage.exec("INSERT INTO task_counts (state, n) VALUES (0, 1), (1, 1), (10, 1), (11, 0)");
      storage.exec("DELETE FROM meta WHERE key = 'task_counts'");
      storage.exec("INSERT INTO meta (key, value) VALUES ('seq', '1')");
      storage.exec("UPDATE meta SET value = '1' WHERE key = 'schema_version'");
      const { tasks: upgraded, reads } = openStore(storage);
      const indexes = storage
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('tasks_running', 'tasks_succeeded', 'sqlite_autoindex_tasks_1')",
        )
        .toArray();
      // Version 4: the table is its primary key (no separate index for it).
      const table = storage.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'tasks'").one().sql;
      const countsAfterUpgrade = upgraded.counts();
      const runningRow = upgraded.get(running!)!;
      // The finish of the attempt that ran before the upgrade is taken once; a repeat is stale.
      const adopted = upgraded.adopt(running!, 1, now, now + 60_000);
      const again = upgraded.adopt(running!, 1, now, now + 60_000);
      upgraded.markFinished(running!, 1, 10, now);
      // Version 6: results in seq order come from the results log, the one numbered before the
      // upgrade first (moved there from its index), the one after it from the log's tail.
      const replay = reads
        .finishedSince(0)
        .rows.map((row) => [row.id === succeeded ? "succeeded" : row.id === running ? "running" : row.id, row.seq]);
      return {
        replay,
        indexes: indexes.length,
        withoutRowid: table.includes("WITHOUT ROWID"),
        succeeded: upgraded.get(succeeded!)!.state,
        countsAfterUpgrade,
        runningRow: { state: runningRow.state, attempts: runningRow.attempts },
        adopted,
        again,
        finished: { state: upgraded.get(running!)!.state, attempts: upgraded.get(running!)!.attempts },
        waiting: upgraded.get(waiting!)!.state,
        counts: upgraded.counts(),
      };
    });
    expect(after).toMatchObject({
      replay: [
        ["succeeded", 1],
        ["running", 2],
      ],
      indexes: 0,
      withoutRowid: true,
      succeeded: 10,
      countsAfterUpgrade: { waiting: 2, doing: 0, success: 1, failed: 0 },
      runningRow: { state: 0, attempts: 0 },
      adopted: true,
      again: false,
      finished: { state: 10, attempts: 1 },
      waiting: 0,
      counts: { waiting: 1, doing: 0, success: 2, failed: 0 },
    });
  });

  it("a store at the current schema version runs no DDL when opened: what is not in its version stays as it is", async () => {
    const app = uniqueApp("schemaver");
    await createApp(app);
    const after = await sql(app)((storage) => {
      storage.exec("DROP INDEX tasks_failed");
      const meter = metered(storage);
      openStore(meter.sql);
      const indexes = storage
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'tasks_failed'")
        .toArray();
      const version = storage
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
        .one().value;
      // Put back what the test took, so the object's own queries still find their index.
      storage.exec("CREATE INDEX tasks_failed ON tasks(id) WHERE state = 11");
      return { rebuilt: indexes.length, written: meter.rowsWritten(), version: Number(version) };
    });
    expect(after).toEqual({ rebuilt: 0, written: 0, version: SCHEMA_VERSION });
  });
});
