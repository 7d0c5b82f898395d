/**
 * The app's own object's list of its shard objects (table `shards`, schema v8): a row per shard
 * and partition, written when the shard is first opened, with the latest result seq the shard
 * reported (so a report sent twice is counted once). The home asks them all for what spans the
 * app (listings, counts, bulk jobs) and tells them all what changes (config, keys).
 */
import type { ShardPlace } from "./routing";

export interface ShardRow extends Record<string, SqlStorageValue> {
  name: string;
  start_ms: number;
  end_ms: number;
  reported_seq: number;
  /** The version of the app's copy the shard holds (shard-sync.ts). */
  synced_version: number;
}

export class ShardMap {
  readonly #sql: SqlStorage;
  /** The rows, read once per wake-up. */
  #rows: Map<string, ShardRow> | null = null;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #all(): Map<string, ShardRow> {
    this.#rows ??= new Map(
      this.#sql
        .exec<ShardRow>(
          "SELECT name, start_ms, end_ms, reported_seq, synced_version FROM shards ORDER BY start_ms, name",
        )
        .toArray()
        .map((row) => [row.name, row]),
    );
    return this.#rows;
  }

  has(name: string): boolean {
    return this.#all().has(name);
  }

  /** Every shard object of the app, oldest partition first. */
  list(): ShardRow[] {
    return [...this.#all().values()];
  }

  add(place: ShardPlace, syncedVersion: number): void {
    if (this.has(place.name)) return;
    this.#sql.exec(
      "INSERT INTO shards (name, start_ms, end_ms, reported_seq, synced_version) VALUES (?, ?, ?, 0, ?)",
      place.name,
      place.startMs,
      place.endMs,
      syncedVersion,
    );
    this.#all().set(place.name, {
      name: place.name,
      start_ms: place.startMs,
      end_ms: place.endMs,
      reported_seq: 0,
      synced_version: syncedVersion,
    });
  }

  /** The shard holds the app's copy of `version` now. */
  setSynced(name: string, version: number): void {
    const row = this.#all().get(name);
    if (!row || row.synced_version >= version) return;
    this.#sql.exec("UPDATE shards SET synced_version = ? WHERE name = ?", version, name);
    row.synced_version = version;
  }

  /** The latest result seq `name` reported (0: none, or no such shard). */
  reported(name: string): number {
    return this.#all().get(name)?.reported_seq ?? 0;
  }

  setReported(name: string, seq: number): void {
    const row = this.#all().get(name);
    if (!row || row.reported_seq >= seq) return;
    this.#sql.exec("UPDATE shards SET reported_seq = ? WHERE name = ?", seq, name);
    row.reported_seq = seq;
  }

  remove(name: string): void {
    this.#sql.exec("DELETE FROM shards WHERE name = ?", name);
    this.#all().delete(name);
  }

  /** Read the rows again on next use (the tables were dropped or rolled back). */
  forget(): void {
    this.#rows = null;
  }
}
