/**
 * The app object's SQLite schema, by version. The DDL runs only when the version kept in the
 * store (meta "schema_version") is behind: a wake-up of an up-to-date object reads one row.
 * Each step is idempotent (IF NOT EXISTS, a column added only when missing), so a store of any
 * age, including one from before versions were kept, is brought up to date by running the
 * steps after its version in order.
 */

import { TAIL_FLUSH_ENTRIES } from "./results-log";
import { PARKED, RESTARTED } from "./sql";
import { CHECKPOINT_KEY, type CountsCheckpoint } from "./task-counts";

/** The version this code's queries expect. */
export const SCHEMA_VERSION = 8;

/**
 * Version 1: every table and index of 2026-11 (stores from before versions were kept count as 0).
 * Exported for the upgrade tests, which build a store of that age.
 */
export const TABLES_V1 = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  req_id TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  raw_query TEXT NOT NULL,
  header TEXT NOT NULL,
  body BLOB NOT NULL,
  created_ms INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  executions INTEGER NOT NULL DEFAULT 0,
  eta_ms INTEGER NOT NULL,
  dispatched_ms INTEGER,
  lease_ms INTEGER,
  first_attempt_ms INTEGER,
  last_status INTEGER,
  retry_reason TEXT,
  response_status INTEGER,
  response_header TEXT,
  response_body BLOB,
  exec_ms INTEGER,
  finished_ms INTEGER,
  error TEXT,
  dedup_id TEXT,
  max_attempts INTEGER,
  timeout REAL,
  callback TEXT,
  seq INTEGER,
  fail_fast INTEGER
);
-- Partial indexes: each holds only the rows one duty looks for, so the outbox, the queue window
-- and the running attempts are found without reading the backlog, and a row costs index writes
-- only while it is in that condition.
-- The outbox: waiting tasks without a queue message, by when they are due.
CREATE INDEX IF NOT EXISTS tasks_outbox ON tasks(eta_ms) WHERE state = 0 AND dispatched_ms IS NULL;
-- The queue window: waiting tasks with a message in flight (at most DISPATCH_WINDOW rows).
CREATE INDEX IF NOT EXISTS tasks_in_flight ON tasks(dispatched_ms) WHERE state = 0 AND dispatched_ms IS NOT NULL;
-- Running attempts, by when their lease runs out.
CREATE INDEX IF NOT EXISTS tasks_running ON tasks(lease_ms) WHERE state = 1;
CREATE TABLE IF NOT EXISTS notifications (
  task_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  url TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  eta_ms INTEGER NOT NULL,
  dispatched_ms INTEGER,
  PRIMARY KEY (task_id, kind)
);
-- Notifications to send (by when they are due) and sent ones (by when, to find lost messages):
-- with a receiver down, thousands may wait, and the outbox asks after every commit.
CREATE INDEX IF NOT EXISTS notifications_unsent ON notifications(eta_ms) WHERE dispatched_ms IS NULL;
CREATE INDEX IF NOT EXISTS notifications_sent ON notifications(dispatched_ms) WHERE dispatched_ms IS NOT NULL;
-- Finished tasks by result number: the feed's replay, and retention (seqs are handed out in
-- finishing order, so the oldest results come first).
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks(seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_dedup ON tasks(dedup_id) WHERE dedup_id IS NOT NULL;
-- Listing by state, newest first, paged by id: one partial index per state a task rests in
-- (running ones are few: tasks_running). Every index entry a write adds is a billed row: a task
-- enters one of these per transition, where one (state, id) index took an entry per transition
-- on top of tasks_running's.
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS tasks_succeeded ON tasks(id) WHERE state = 10;
CREATE INDEX IF NOT EXISTS tasks_failed ON tasks(id) WHERE state = 11;
-- Stores before 2026-11-26 listed by one (state, id) index and retained by finishing time.
DROP INDEX IF EXISTS tasks_by_state;
DROP INDEX IF EXISTS tasks_by_finish;
-- Task counts by state, kept by the store with its writes (see TaskStore.#counted): reading them
-- never scans the table.
CREATE TABLE IF NOT EXISTS task_counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
-- Stores before 2026-11 kept the counts with triggers, one counter write per task write.
DROP TRIGGER IF EXISTS tasks_count_insert;
DROP TRIGGER IF EXISTS tasks_count_update;
DROP TRIGGER IF EXISTS tasks_count_delete;
-- The app's access keys (app/app-keys.ts), their secrets sealed.
CREATE TABLE IF NOT EXISTS access_keys (
  access_key TEXT PRIMARY KEY,
  sealed_secret BLOB NOT NULL,
  permissions TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
`;

/**
 * Version 4's tasks table: keyed by the id alone (WITHOUT ROWID: the row is its primary key's
 * entry, so an insert is one billed row, not two), the small columns first so that reading a
 * task's state and times stays off the overflow pages its bodies spill onto.
 */
export const TASK_COLUMNS = `id, state, eta_ms, created_ms, seq, attempts, executions, finished_ms, exec_ms, first_attempt_ms,
  lease_ms, last_status, response_status, max_attempts, timeout, fail_fast, dedup_id, req_id, method, retry_reason, error,
  callback, path, raw_query, header, response_header, body, response_body`;
/** The tasks table as version 4 built it, under `name` (the live table, and each sealed partition: partitions.ts). */
export const tasksTable = (name: string) => `CREATE TABLE ${name} (
  id TEXT PRIMARY KEY NOT NULL,
  state INTEGER NOT NULL,
  eta_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  seq INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  executions INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER,
  exec_ms INTEGER,
  first_attempt_ms INTEGER,
  lease_ms INTEGER,
  last_status INTEGER,
  response_status INTEGER,
  max_attempts INTEGER,
  timeout REAL,
  fail_fast INTEGER,
  dedup_id TEXT,
  req_id TEXT NOT NULL,
  method TEXT NOT NULL,
  retry_reason TEXT,
  error TEXT,
  callback TEXT,
  path TEXT NOT NULL,
  raw_query TEXT NOT NULL,
  header TEXT NOT NULL,
  response_header TEXT,
  body BLOB NOT NULL,
  response_body BLOB
) WITHOUT ROWID`;
/** The tasks table's columns now: version 4's and `restarted_ms` (version 7), the live table's and each partition's. */
export const LIVE_TASK_COLUMNS = `${TASK_COLUMNS}, restarted_ms`;
/** The tasks table as it is now, under `name` (a partition's seal makes a fresh live table). */
export const liveTasksTable = (name: string) =>
  tasksTable(name).replace(/\) WITHOUT ROWID$/, ",\n  restarted_ms INTEGER\n) WITHOUT ROWID");
const TASKS_V4 = `
${tasksTable("tasks_v4")};
INSERT INTO tasks_v4 (${TASK_COLUMNS}) SELECT ${TASK_COLUMNS} FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_v4 RENAME TO tasks;
-- Every waiting task by when it is due (the outbox; which have a message out is kept in memory).
CREATE INDEX tasks_outbox ON tasks(eta_ms) WHERE state = 0;
-- Waiting and failed tasks by id (listings, expiry, purge, redrive); succeeded ones by the key.
CREATE INDEX tasks_waiting ON tasks(id) WHERE state = 0;
CREATE INDEX tasks_failed ON tasks(id) WHERE state = 11;
-- Results by number: the feed's replay, retention, the counts' rebuild.
CREATE INDEX tasks_by_seq ON tasks(seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX tasks_by_dedup ON tasks(dedup_id) WHERE dedup_id IS NOT NULL;
`;

/** The steps, in order: step n brings a store from version n to n + 1. */
const MIGRATIONS: ((sql: SqlStorage) => void)[] = [
  (sql) => {
    sql.exec(TABLES_V1);
    // Columns added since a store was created (CREATE TABLE IF NOT EXISTS leaves old tables be).
    try {
      sql.exec("SELECT fail_fast FROM tasks LIMIT 0");
    } catch {
      sql.exec("ALTER TABLE tasks ADD COLUMN fail_fast INTEGER");
    }
    // A store older than the counters: count once, then the store keeps them.
    if (sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM task_counts").one().n === 0) {
      sql.exec(
        `INSERT INTO task_counts (state, n) SELECT s.state, (SELECT COUNT(*) FROM tasks WHERE tasks.state = s.state)
         FROM (SELECT 0 AS state UNION ALL SELECT 1 UNION ALL SELECT 10 UNION ALL SELECT 11) AS s`,
      );
    }
  },
  // Version 2 (2026-12): running attempts live in memory (a begin writes nothing) and succeeded
  // tasks are listed by the primary key: two index entries a task no longer pays for.
  (sql) => {
    // A task running when the store was upgraded waits again with the attempts made before it:
    // the finish of the attempt that ran is taken (TaskStore.adopt), and the task is sent again.
    sql.exec("UPDATE tasks SET state = 0, attempts = MAX(0, attempts - 1), lease_ms = NULL WHERE state = 1");
    // After the update, which finds the running tasks by that index.
    sql.exec("DROP INDEX IF EXISTS tasks_running");
    sql.exec("DROP INDEX IF EXISTS tasks_succeeded");
    // The counts, the latest seq and the re-sends move to one checkpoint row (task-counts.ts),
    // kept in memory and written by time instead of with every group commit.
    const count = (state: number) =>
      sql.exec<{ n: number }>("SELECT COALESCE(SUM(n), 0) AS n FROM task_counts WHERE state = ?", state).one().n;
    const metaValue = (key: string) =>
      Number(sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? "0");
    const lastId = sql.exec<{ id: string | null }>("SELECT MAX(id) AS id FROM tasks").one().id ?? "";
    const latestSeq = sql.exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM tasks").one().seq ?? 0;
    const checkpoint: CountsCheckpoint = {
      counts: { 0: count(0) + count(1), 10: count(10), 11: count(11) },
      seq: Math.max(metaValue("seq"), latestSeq),
      lastId,
      resends: metaValue("resends"),
    };
    sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      CHECKPOINT_KEY,
      JSON.stringify(checkpoint),
    );
    sql.exec("DELETE FROM meta WHERE key IN ('seq', 'resends')");
    sql.exec("DROP TABLE task_counts");
  },
  // Version 3 (2026-12): which tasks have a queue message out is kept in memory (a send writes
  // nothing): the outbox holds every waiting task by when it is due, and passes over those with a
  // message out or an attempt running. The dispatched_ms column is no longer read or written. A
  // message out at the upgrade is sent again (a duplicate is dropped by the state machine).
  (sql) => {
    sql.exec("DROP INDEX IF EXISTS tasks_in_flight");
    sql.exec("DROP INDEX IF EXISTS tasks_outbox");
    sql.exec("CREATE INDEX tasks_outbox ON tasks(eta_ms) WHERE state = 0");
  },
  // Version 4 (2026-12): the tasks table rebuilt WITHOUT ROWID (TASKS_V4): the TEXT primary
  // key's separate index goes, a row written less per task. One copy of the table (see
  // docs/deploy.md); the unused dispatched_ms column is left behind.
  (sql) => sql.exec(TASKS_V4),
  // Version 5 (2026-12): waiting tasks have no index entry of their own (an accepted task writes
  // its row alone): the outbox finds them by the primary key from a lower bound of their ids,
  // kept with the counts' checkpoint, and parked ones (due long after their creation) by
  // tasks_parked. The bound starts at the oldest waiting task.
  (sql) => {
    const oldest = sql.exec<{ id: string | null }>("SELECT MIN(id) AS id FROM tasks WHERE state = 0").one().id;
    const newest = sql.exec<{ id: string | null }>("SELECT MAX(id) AS id FROM tasks").one().id;
    const stored = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", CHECKPOINT_KEY).toArray()[0];
    if (stored) {
      const checkpoint = JSON.parse(stored.value) as CountsCheckpoint;
      // With none waiting, the first id above the newest (ids are fixed-length hex: "~" sorts after every digit).
      const from = oldest ?? (newest === null ? "" : `${newest}~`);
      checkpoint.out = { at: checkpoint.out?.at ?? 0, ids: checkpoint.out?.ids ?? [], from };
      sql.exec("UPDATE meta SET value = ? WHERE key = ?", JSON.stringify(checkpoint), CHECKPOINT_KEY);
    }
    sql.exec("DROP INDEX IF EXISTS tasks_waiting");
    sql.exec("DROP INDEX IF EXISTS tasks_outbox");
    sql.exec(`CREATE INDEX tasks_parked ON tasks(eta_ms) WHERE ${PARKED}`);
  },
  // Version 6 (2026-12): results in seq order are kept in results_log, a row per checkpoint
  // (results-log.ts), not by an index entry per result: a finish writes its row alone. Every
  // result so far goes into the log, and the checkpoint is brought up to date with the table
  // (counted once), so that a wake-up finds nothing numbered after it.
  (sql) => {
    // Built afresh from the index (a step run again, as the upgrade tests do, starts over).
    sql.exec("DROP TABLE IF EXISTS results_log");
    sql.exec(
      "CREATE TABLE results_log (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, entries TEXT NOT NULL)",
    );
    let chunk: [number, string][] = [];
    const flush = () => {
      if (chunk.length === 0) return;
      sql.exec(
        "INSERT INTO results_log (first_seq, last_seq, entries) VALUES (?, ?, ?)",
        chunk[0]![0],
        chunk[chunk.length - 1]![0],
        JSON.stringify(chunk),
      );
      chunk = [];
    };
    for (const row of sql.exec<{ id: string; seq: number }>(
      "SELECT id, seq FROM tasks INDEXED BY tasks_by_seq WHERE seq IS NOT NULL ORDER BY seq",
    )) {
      chunk.push([row.seq, row.id]);
      if (chunk.length === TAIL_FLUSH_ENTRIES) flush();
    }
    flush();
    const stored = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", CHECKPOINT_KEY).toArray()[0];
    if (stored) {
      const checkpoint = JSON.parse(stored.value) as CountsCheckpoint;
      const counts: Record<number, number> = { 0: 0, 10: 0, 11: 0 };
      for (const row of sql.exec<{ state: number; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state"))
        counts[row.state] = row.n;
      const { seq, id } = sql
        .exec<{ seq: number | null; id: string | null }>("SELECT MAX(seq) AS seq, MAX(id) AS id FROM tasks")
        .one();
      checkpoint.counts = { 0: counts[0]!, 10: counts[10]!, 11: counts[11]! };
      checkpoint.seq = Math.max(checkpoint.seq, seq ?? 0);
      checkpoint.lastId = id !== null && id > checkpoint.lastId ? id : checkpoint.lastId;
      sql.exec("UPDATE meta SET value = ? WHERE key = ?", JSON.stringify(checkpoint), CHECKPOINT_KEY);
    }
    sql.exec("DROP INDEX IF EXISTS tasks_by_seq");
  },
  // Version 7 (2026-12): a retried or redriven task's retention counts from its restart, not its
  // creation (it could expire mid-attempt): the restart's time, and an index of the restarted
  // tasks that wait (few: a restart pays its entry).
  (sql) => {
    try {
      sql.exec("SELECT restarted_ms FROM tasks LIMIT 0");
    } catch {
      sql.exec("ALTER TABLE tasks ADD COLUMN restarted_ms INTEGER");
    }
    sql.exec(`CREATE INDEX IF NOT EXISTS tasks_restarted ON tasks(restarted_ms) WHERE ${RESTARTED}`);
  },
  // Version 8 (2026-12): the shard objects an app with `shards` > 1 stores its tasks in (a row
  // per shard and partition, kept by the app's own object: shards/shard-map.ts), with the latest
  // result each shard reported and the version of the app's copy it holds.
  (sql) => {
    sql.exec(`CREATE TABLE IF NOT EXISTS shards (
      name TEXT PRIMARY KEY,
      start_ms INTEGER NOT NULL,
      end_ms INTEGER NOT NULL,
      reported_seq INTEGER NOT NULL DEFAULT 0,
      synced_version INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID`);
  },
];

/**
 * Brings the store's schema up to {@link SCHEMA_VERSION}. The meta table (where the version is
 * kept) is the one statement every wake-up runs; the rest runs once per version.
 */
export function migrate(sql: SqlStorage): void {
  sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
  const version = row ? Number(row.value) : 0;
  if (version >= SCHEMA_VERSION) return;
  for (let step = version; step < SCHEMA_VERSION; step++) MIGRATIONS[step]!(sql);
  sql.exec(
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    String(SCHEMA_VERSION),
  );
}
