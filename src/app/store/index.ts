/**
 * The app object's store, filed by table: `meta`, `tasks`, `notifications`. Opening it brings
 * the schema up to date first (schema.ts: only when its kept version is behind). An object that
 * is no app (never configured, or deleted) may be opened without creating anything: a request
 * that finds no app then writes no row.
 */
import { MetaStore } from "./meta";
import { NotificationStore } from "./notifications";
import { migrate } from "./schema";
import { TaskReads } from "./task-reads";
import { TaskStore } from "./tasks";

export interface AppStore {
  meta: MetaStore;
  tasks: TaskStore;
  /** Listings, the feed's replay, redrive matches: the tasks table's read side. */
  reads: TaskReads;
  notifications: NotificationStore;
  /** Whether the tables exist (false: an object opened with `create: false` that was never an app). */
  exists(): boolean;
  /** Creates the tables (or brings them up to date) when they do not exist yet. */
  create(): void;
}

/** Opens the store; with `create: false` a store that does not exist yet is left uncreated. */
export function openStore(sql: SqlStorage, { create = true }: { create?: boolean } = {}): AppStore {
  let exists = sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length > 0;
  const createTables = () => {
    migrate(sql);
    exists = true;
  };
  if (exists || create) createTables();
  const meta = new MetaStore(sql);
  const tasks = new TaskStore(sql, meta);
  return {
    meta,
    tasks,
    reads: new TaskReads(sql, tasks.running, () => tasks.waitingFrom(), tasks.results, tasks.partitions),
    notifications: new NotificationStore(sql),
    exists: () => exists,
    create: () => {
      if (!exists) createTables();
    },
  };
}

export { MetaStore, StoredValue } from "./meta";
export { NotificationStore } from "./notifications";
export { REPLAY_PAGE_BYTES, TaskReads, type RemoteResult } from "./task-reads";
export { TaskStore } from "./tasks";
export { toRecord } from "./record";
export type * from "./rows";
