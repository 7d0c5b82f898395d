/**
 * The app object's store, filed by table: `meta`, `tasks`, `notifications`. Opening it brings
 * the schema up to date first (schema.ts: only when its kept version is behind).
 */
import { MetaStore } from "./meta";
import { NotificationStore } from "./notifications";
import { migrate } from "./schema";
import { TaskStore } from "./tasks";

export interface AppStore {
  meta: MetaStore;
  tasks: TaskStore;
  notifications: NotificationStore;
}

export function openStore(sql: SqlStorage): AppStore {
  migrate(sql);
  const meta = new MetaStore(sql);
  return { meta, tasks: new TaskStore(sql, meta), notifications: new NotificationStore(sql) };
}

export { MetaStore, StoredValue } from "./meta";
export { NotificationStore } from "./notifications";
export { REPLAY_PAGE_BYTES, TaskStore } from "./tasks";
export { toRecord } from "./record";
export type * from "./rows";
