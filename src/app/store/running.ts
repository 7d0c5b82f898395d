/**
 * The attempts running now, kept in memory and not in the tasks table: a `begin` writes nothing
 * (a row and an index entry saved per task). A running task's row stays waiting (state 0, with
 * the attempts made before this one and its message mark); readers see the attempt overlaid. The
 * attempt's end is the one write. Changes made inside a group commit are journaled, so a
 * savepoint or group that rolls back takes its begins and finishes back with it.
 */
import type { TaskRow } from "./rows";

/** An attempt running now. */
export interface RunningAttempt {
  attempt: number;
  /** When it is presumed lost (its consumer gone). */
  leaseMs: number;
  startedMs: number;
}

export class RunningAttempts {
  readonly #attempts = new Map<string, RunningAttempt>();
  /** How to undo each change while a batch is open (null: no batch). */
  #journal: (() => void)[] | null = null;

  get(id: string): RunningAttempt | undefined {
    return this.#attempts.get(id);
  }

  has(id: string): boolean {
    return this.#attempts.has(id);
  }

  get size(): number {
    return this.#attempts.size;
  }

  /** Task ids of the running attempts. */
  ids(): string[] {
    return [...this.#attempts.keys()];
  }

  /** `id` runs `value` from now (null: nothing runs), undoably within a batch. */
  set(id: string, value: RunningAttempt | null): void {
    const before = this.#attempts.get(id) ?? null;
    this.#put(id, value);
    this.#journal?.push(() => this.#put(id, before));
  }

  #put(id: string, value: RunningAttempt | null): void {
    if (value) this.#attempts.set(id, value);
    else this.#attempts.delete(id);
  }

  /** Moves an attempt's lease (tests end one early); false when `id` does not run. */
  setLease(id: string, leaseMs: number): boolean {
    const attempt = this.#attempts.get(id);
    if (!attempt) return false;
    this.#attempts.set(id, { ...attempt, leaseMs });
    return true;
  }

  /** Forgets an attempt whose task is gone (deleted under it); not journaled. */
  forget(id: string): void {
    this.#attempts.delete(id);
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

  // ---- reads ---------------------------------------------------------------------------

  /** The row as readers see it: a running attempt overlaid (state 1, its number and lease). */
  overlay(row: TaskRow): TaskRow {
    const attempt = row.state === 0 ? this.#attempts.get(row.id) : undefined;
    if (!attempt) return row;
    return {
      ...row,
      state: 1,
      attempts: attempt.attempt,
      lease_ms: attempt.leaseMs,
      dispatched_ms: null,
      first_attempt_ms: row.first_attempt_ms ?? attempt.startedMs,
    };
  }

  /** When the first lease runs out; null when nothing runs. */
  firstLeaseEnd(): number | null {
    let first: number | null = null;
    for (const { leaseMs } of this.#attempts.values()) if (first === null || leaseMs < first) first = leaseMs;
    return first;
  }

  /** Up to `limit` task ids whose attempt's lease ran out by `nowMs`, the longest gone first. */
  expired(nowMs: number, limit: number): string[] {
    return [...this.#attempts]
      .filter(([, attempt]) => attempt.leaseMs <= nowMs)
      .sort(([, a], [, b]) => a.leaseMs - b.leaseMs)
      .slice(0, limit)
      .map(([id]) => id);
  }
}
