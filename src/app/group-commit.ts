/**
 * Group commit for a Durable Object's SQLite. Each commit is its own fsync and the runtime
 * does not coalesce separate RPCs, so operations arriving within one turn of the event loop
 * (submissions, begins, finishes) run in one transaction; then what they produced (queue
 * messages, subscriber frames) goes out once, and every caller is answered after both.
 *
 * Each operation runs in its own savepoint (a nested transactionSync): one that throws is
 * undone alone, with the in-memory effects it queued, and its neighbours commit.
 */
import { log } from "../shared/log";

export interface GroupEffects {
  /** A group starts: reset what is counted per group. */
  beginGroup(): void;
  /** A snapshot of the in-memory effects an operation may add; calling it undoes them. */
  checkpoint(): () => void;
  /** Every operation ran: last writes inside the group's transaction (what was gathered per group). */
  beforeCommit(): void;
  /** The whole group rolled back: drop every effect gathered for it. */
  discard(): void;
  /** After the group committed: send what it produced (the output gate holds it until durable). */
  afterCommit(): Promise<void>;
}

type Result = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Operation {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  readonly #storage: DurableObjectStorage;
  readonly #effects: GroupEffects;
  readonly #delayMs: number;
  #operations: Operation[] = [];

  /** @param delayMs how long to gather operations (0: whatever arrives in this turn). */
  constructor(storage: DurableObjectStorage, effects: GroupEffects, delayMs = 0) {
    this.#storage = storage;
    this.#effects = effects;
    this.#delayMs = delayMs;
  }

  /** Runs `operation` (synchronous SQLite work) in the next group; resolves once it is committed. */
  run<T>(operation: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#operations.push({ run: operation, resolve: resolve as (value: unknown) => void, reject });
      if (this.#operations.length === 1) setTimeout(() => void this.#commit(), this.#delayMs);
    });
  }

  async #commit(): Promise<void> {
    const operations = this.#operations;
    this.#operations = [];
    const results: Result[] = [];
    try {
      this.#effects.beginGroup();
      this.#storage.transactionSync(() => {
        // Alone in its group, an operation needs no savepoint of its own: the group's transaction
        // isolates it (a failure rolls back just it). Groups are that small when load is spread thin.
        if (operations.length === 1) results.push({ ok: true, value: operations[0]!.run() });
        else for (const operation of operations) results.push(this.#isolated(operation.run));
        this.#effects.beforeCommit();
      });
    } catch (error) {
      log("error", "group_rolled_back", { operations: operations.length }, error);
      this.#effects.discard();
      for (const operation of operations) operation.reject(error);
      return;
    }
    try {
      await this.#effects.afterCommit();
    } catch (error) {
      log("error", "after_commit_failed", { hint: "the alarm retries it" }, error);
    }
    operations.forEach((operation, i) => {
      const result = results[i]!;
      if (result.ok) operation.resolve(result.value);
      else operation.reject(result.error);
    });
  }

  #isolated(run: () => unknown): Result {
    const undo = this.#effects.checkpoint();
    try {
      return { ok: true, value: this.#storage.transactionSync(run) };
    } catch (error) {
      log("error", "operation_rolled_back", {}, error);
      undo();
      return { ok: false, error };
    }
  }
}
