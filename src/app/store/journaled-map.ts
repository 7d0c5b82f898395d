/**
 * A map kept in memory beside the tables, whose changes inside a group commit are journaled: a
 * savepoint or group that rolls back takes them back with its writes (the store's running
 * attempts and queue-message marks).
 */
export class JournaledMap<K, V> {
  readonly #entries = new Map<K, V>();
  /** How to undo each change while a batch is open (null: no batch). */
  #journal: (() => void)[] | null = null;

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  keys(): K[] {
    return [...this.#entries.keys()];
  }

  entries(): IterableIterator<[K, V]> {
    return this.#entries.entries();
  }

  values(): IterableIterator<V> {
    return this.#entries.values();
  }

  /** `key` holds `value` from now (null: nothing), undoably within a batch. */
  set(key: K, value: V | null): void {
    const before = this.#entries.get(key) ?? null;
    this.#put(key, value);
    this.#journal?.push(() => this.#put(key, before));
  }

  /** Forgets every entry, undoably within a batch. */
  clear(): void {
    const before = [...this.#entries];
    this.#entries.clear();
    this.#journal?.push(() => {
      this.#entries.clear();
      for (const [key, value] of before) this.#entries.set(key, value);
    });
  }

  /** Sets an entry outside the journal (what no rollback should take back); answers whether it was there. */
  replace(key: K, value: V | null): boolean {
    const had = this.#entries.has(key);
    this.#put(key, value);
    return had;
  }

  #put(key: K, value: V | null): void {
    if (value !== null) this.#entries.set(key, value);
    else this.#entries.delete(key);
  }

  // ---- the journal: a group commit's rollbacks ----------------------------------------

  openBatch(): void {
    this.#journal = [];
  }

  closeBatch(): void {
    this.#journal = null;
  }

  /** How many changes the open batch made (a savepoint's mark). */
  changes(): number {
    return this.#journal?.length ?? 0;
  }

  /** Undoes the open batch's changes after the first `keep`. */
  rollback(keep = 0): void {
    const journal = this.#journal;
    if (!journal) return;
    while (journal.length > keep) journal.pop()!();
  }
}
