/**
 * The app's meta table: small named values (config, identity, counters of the app's own, the
 * schema version), each one row of JSON or text.
 */
export class MetaStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  get(key: string): string | null {
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row ? row.value : null;
  }

  set(key: string, value: string): void {
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}

/**
 * A value of the app's kept in its object's SQLite (the meta table, as JSON) so it holds
 * across restarts, and in memory so the hot path reads it once per wake-up.
 */
export class StoredValue<T> {
  readonly #meta: () => MetaStore;
  readonly #key: string;
  readonly #fallback: T;
  #value: { current: T } | null = null;

  constructor(meta: () => MetaStore, key: string, fallback: T) {
    this.#meta = meta;
    this.#key = key;
    this.#fallback = fallback;
  }

  get(): T {
    if (this.#value === null) {
      const stored = this.#meta().get(this.#key);
      this.#value = { current: stored === null ? this.#fallback : (JSON.parse(stored) as T) };
    }
    return this.#value.current;
  }

  set(value: T): void {
    this.#value = { current: value };
    this.#meta().set(this.#key, JSON.stringify(value));
  }

  /** The app was deleted: read afresh next time. */
  forget(): void {
    this.#value = null;
  }
}
