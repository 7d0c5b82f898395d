/**
 * Retention by partition: results are not deleted a row at a time (each delete is a billed row)
 * but a table at a time. The live table, `tasks`, takes every new task. Once its oldest result is
 * older than the partition period it is sealed: its unfinished tasks move to a fresh live table
 * and the rest stays, read-only, as a partition named by when it was sealed. A partition is
 * dropped (DROP TABLE: schema bookkeeping, no row per task) once every result in it is past
 * retention and none has a notification pending. So a result lives at least `retention` after it
 * finished, and at most about a partition period longer.
 *
 * Every task is in exactly one table: reads by id look in the live table, then in the partitions,
 * newest first; a failed task redriven out of a partition moves back into the live table first.
 * Each partition keeps two indexes under its own name: failed tasks (redrive) and deduplication ids.
 */
import type { MetaStore } from "./meta";
import { LIVE_TASK_COLUMNS, liveTasksTable } from "./schema";
import { PARKED, RESTARTED } from "./sql";

export interface Partition {
  /** Its table: `tasks_p<sealed ms>`. */
  table: string;
  sealedMs: number;
  /** When its newest result finished: it may go once that is past retention. */
  maxFinishedMs: number;
  /** The latest seq handed out when it was sealed: its results in the log are those up to here. */
  lastSeq: number;
}

const PARTITIONS_KEY = "partitions";

/** The live table's indexes (a sealed partition keeps its failed and deduplication ones under its own name). */
export const LIVE_INDEXES = `CREATE INDEX tasks_parked ON tasks(eta_ms) WHERE ${PARKED};
CREATE INDEX tasks_failed ON tasks(id) WHERE state = 11;
CREATE UNIQUE INDEX tasks_by_dedup ON tasks(dedup_id) WHERE dedup_id IS NOT NULL;
CREATE INDEX tasks_restarted ON tasks(restarted_ms) WHERE ${RESTARTED};`;

/** How long the live table gathers results before it is sealed: an eighth of retention, at least a minute. */
export const partitionPeriodMs = (retentionMs: number) => Math.max(60_000, Math.floor(retentionMs / 8));

export class Partitions {
  readonly #sql: SqlStorage;
  readonly #meta: MetaStore;
  /** Oldest first; null: read them on first use. */
  #list: Partition[] | null = null;

  constructor(sql: SqlStorage, meta: MetaStore) {
    this.#sql = sql;
    this.#meta = meta;
  }

  /** The sealed partitions, oldest first. */
  get list(): readonly Partition[] {
    this.#list ??= JSON.parse(this.#meta.get(PARTITIONS_KEY) ?? "[]") as Partition[];
    return this.#list;
  }

  /** Their tables, newest first (the order reads by id look in, after the live table). */
  tables(): string[] {
    return this.list.map((partition) => partition.table).reverse();
  }

  /** The latest seq of the newest partition (0: none): results numbered after it are in the live table. */
  lastSealedSeq(): number {
    return this.list[this.list.length - 1]?.lastSeq ?? 0;
  }

  #save(list: Partition[]): void {
    this.#meta.set(PARTITIONS_KEY, JSON.stringify(list));
    this.#list = list;
  }

  /** Read again on next use (a write that bypassed the store: tests). */
  forget(): void {
    this.#list = null;
  }

  /**
   * Seals the live table as a partition (its results numbered up to `lastSeq`): its unfinished
   * tasks move to a fresh live table. Null when it holds no result. Answers the rows written.
   */
  seal(nowMs: number, lastSeq: number): { partition: Partition; written: number } | null {
    const { finished } = this.#sql
      .exec<{ finished: number | null }>("SELECT MAX(finished_ms) AS finished FROM tasks")
      .one();
    if (finished === null) return null;
    const table = `tasks_p${nowMs}`;
    let written = 0;
    const run = (statement: string) => (written += this.#sql.exec(statement).rowsWritten);
    run(liveTasksTable("tasks_next"));
    // Waiting (and running: their rows wait) tasks move; finished ones stay in the partition.
    run(`INSERT INTO tasks_next (${LIVE_TASK_COLUMNS}) SELECT ${LIVE_TASK_COLUMNS} FROM tasks WHERE state = 0`);
    run("DELETE FROM tasks WHERE state = 0");
    run("DROP INDEX tasks_parked");
    run("DROP INDEX tasks_failed");
    run("DROP INDEX tasks_by_dedup");
    run("DROP INDEX tasks_restarted");
    run(`ALTER TABLE tasks RENAME TO ${table}`);
    run(`CREATE INDEX ${table}_failed ON ${table}(id) WHERE state = 11`);
    run(`CREATE UNIQUE INDEX ${table}_dedup ON ${table}(dedup_id) WHERE dedup_id IS NOT NULL`);
    run("ALTER TABLE tasks_next RENAME TO tasks");
    for (const statement of LIVE_INDEXES.split(";\n")) run(statement);
    const partition = { table, sealedMs: nowMs, maxFinishedMs: finished, lastSeq };
    this.#save([...this.list, partition]);
    return { partition, written };
  }

  /** Whether a task of `partition` has a notification pending (the record is what it sends). */
  notifying(partition: Partition): boolean {
    return (
      this.#sql
        .exec(
          `SELECT 1 FROM notifications WHERE EXISTS (SELECT 1 FROM ${partition.table} AS t WHERE t.id = notifications.task_id) LIMIT 1`,
        )
        .toArray().length > 0
    );
  }

  /** Drops `partition`: answers how many succeeded and failed tasks went, and the rows written. */
  drop(partition: Partition): { succeeded: number; failed: number; written: number } {
    const counts = { succeeded: 0, failed: 0, written: 0 };
    for (const row of this.#sql.exec<{ state: number; n: number }>(
      `SELECT state, COUNT(*) AS n FROM ${partition.table} GROUP BY state`,
    )) {
      if (row.state === 10) counts.succeeded += row.n;
      else counts.failed += row.n;
    }
    counts.written += this.#sql.exec(`DROP TABLE ${partition.table}`).rowsWritten;
    this.#save(this.list.filter((kept) => kept.table !== partition.table));
    return counts;
  }

  /** Task `id`'s row (`columns` of it) from the partition that holds it, if any. */
  find<T extends Record<string, SqlStorageValue>>(id: string, columns = "*"): T | null {
    for (const table of this.tables()) {
      const row = this.#sql.exec<T>(`SELECT ${columns} FROM ${table} WHERE id = ?`, id).toArray()[0];
      if (row) return row;
    }
    return null;
  }

  /** Moves task `id` from its partition into the live table (a redrive); false when no partition holds it. */
  takeBack(id: string): boolean {
    for (const table of this.tables()) {
      const moved = this.#sql.exec(
        `INSERT INTO tasks (${LIVE_TASK_COLUMNS}) SELECT ${LIVE_TASK_COLUMNS} FROM ${table} WHERE id = ?`,
        id,
      ).rowsWritten;
      if (moved === 0) continue;
      this.#sql.exec(`DELETE FROM ${table} WHERE id = ?`, id);
      return true;
    }
    return false;
  }

  /** The task with this deduplication id created after `sinceMs` in a partition, if any. */
  findDuplicate(deduplicationId: string, sinceMs: number): string | null {
    for (const table of this.tables()) {
      const row = this.#sql
        .exec<{
          id: string;
        }>(`SELECT id FROM ${table} WHERE dedup_id = ? AND created_ms > ?`, deduplicationId, sinceMs)
        .toArray()[0];
      if (row) return row.id;
    }
    return null;
  }

  /** Frees a deduplication id in the partitions. */
  releaseDeduplicationId(deduplicationId: string): void {
    for (const table of this.tables())
      this.#sql.exec(`UPDATE ${table} SET dedup_id = NULL WHERE dedup_id = ?`, deduplicationId);
  }
}
