/**
 * Waiting tasks known to the outbox that are not due yet (or were made unsent again), by when
 * they are due: a bounded set in memory, so that the outbox's scan of new tasks can pass over a
 * delayed one without reading it again on every pass. A min-heap with lazy deletion: an entry
 * taken out of the map stays in the heap until it reaches the top.
 */
export class DueLater {
  /** Task id → when it is due (unix ms). */
  readonly #due = new Map<string, number>();
  /** [due, id], the soonest first; entries the map no longer agrees with are skipped. */
  #heap: [number, string][] = [];

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#due.size;
  }

  get full(): boolean {
    return this.#due.size >= this.capacity;
  }

  has(id: string): boolean {
    return this.#due.has(id);
  }

  /** Keeps `id`, due at `dueMs`; false (not kept) when full. */
  add(id: string, dueMs: number): boolean {
    if (!this.#due.has(id) && this.full) return false;
    this.#due.set(id, dueMs);
    this.#push([dueMs, id]);
    if (this.#heap.length > 2 * this.#due.size + 64) this.#rebuild();
    return true;
  }

  delete(id: string): void {
    this.#due.delete(id);
  }

  clear(): void {
    this.#due.clear();
    this.#heap = [];
  }

  /** When the soonest is due; null when none is kept. */
  firstDueMs(): number | null {
    return this.#top()?.[0] ?? null;
  }

  /** Takes out up to `limit` ids due by `nowMs`, the soonest first. */
  takeDue(nowMs: number, limit: number): string[] {
    const taken: string[] = [];
    while (taken.length < limit) {
      const top = this.#top();
      if (!top || top[0] > nowMs) break;
      this.#pop();
      this.#due.delete(top[1]);
      taken.push(top[1]);
    }
    return taken;
  }

  /** The smallest id kept (a bound of the waiting tasks: read at checkpoints). */
  minId(): string | null {
    let min: string | null = null;
    for (const id of this.#due.keys()) if (min === null || id < min) min = id;
    return min;
  }

  /** The top entry the map agrees with, after dropping stale ones. */
  #top(): [number, string] | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#due.get(top[1]) === top[0]) return top;
      this.#pop();
    }
    return undefined;
  }

  #rebuild(): void {
    this.#heap = [];
    for (const [id, dueMs] of this.#due) this.#push([dueMs, id]);
  }

  #push(entry: [number, string]): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]![0] <= entry[0]) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]![0] < heap[left]![0] ? right : left;
      if (heap[child]![0] >= last[0]) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}
