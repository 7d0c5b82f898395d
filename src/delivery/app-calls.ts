/**
 * How the consumer reaches an app's object for a task's attempt: `begin` before it, `finish`
 * after it. Directly (one RPC each), or batched for a consumer batch: begins asked within one
 * turn go as one `beginMany`, and finishes as one `finishMany` once every running attempt of
 * the app has reported, or after at most FINISH_WAIT_MS, FINISH_BATCH results or
 * FINISH_BATCH_BYTES of response bodies. The object runs each item as it would alone (attempt
 * keyed, idempotent, each in its own savepoint), so batching changes the RPC count, not what
 * any begin or finish does.
 */
import type { AttemptReport, AttemptResult, BeginResult, FinishResult } from "../shared/types";

export interface TaskCalls {
  begin(taskId: string): Promise<BeginResult>;
  finish(taskId: string, attempt: number, result: AttemptResult): Promise<FinishResult>;
}

/** What the batcher needs of an app's object stub. */
export interface BatchTarget {
  beginMany(taskIds: string[]): Promise<BeginResult[]>;
  finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]>;
}

export const FINISH_WAIT_MS = 20;
export const FINISH_BATCH = 50;
/** Response bodies carried by one finishMany: far under an RPC's size limit. */
export const FINISH_BATCH_BYTES = 8 * 1024 * 1024;

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** An item of a batched call whose own answer said it could not be stored. */
export class NotStored extends Error {
  override name = "NotStored";
}

export class BatchedCalls implements TaskCalls {
  readonly #target: BatchTarget;
  #begins: { taskId: string; waiter: Waiter<BeginResult> }[] = [];
  #finishes: { report: AttemptReport; waiter: Waiter<FinishResult> }[] = [];
  #finishBytes = 0;
  #finishTimer: ReturnType<typeof setTimeout> | null = null;
  /** Attempts begun through here whose finish has not been asked for yet. */
  #running = 0;

  constructor(target: BatchTarget) {
    this.#target = target;
  }

  begin(taskId: string): Promise<BeginResult> {
    return new Promise((resolve, reject) => {
      this.#begins.push({ taskId, waiter: { resolve, reject } });
      if (this.#begins.length === 1) setTimeout(() => void this.#sendBegins(), 0);
    });
  }

  finish(taskId: string, attempt: number, result: AttemptResult): Promise<FinishResult> {
    return new Promise((resolve, reject) => {
      this.#running = Math.max(0, this.#running - 1);
      this.#finishes.push({ report: { taskId, attempt, result }, waiter: { resolve, reject } });
      this.#finishBytes += result.kind === "response" ? result.body.byteLength : 0;
      // Nothing else is running: no other result could join, so waiting would only add latency.
      if (this.#running === 0 || this.#finishes.length >= FINISH_BATCH || this.#finishBytes >= FINISH_BATCH_BYTES) this.flush();
      else this.#finishTimer ??= setTimeout(() => this.flush(), FINISH_WAIT_MS);
    });
  }

  /** Sends the finishes gathered so far now. */
  flush(): void {
    if (this.#finishTimer) clearTimeout(this.#finishTimer);
    this.#finishTimer = null;
    const finishes = this.#finishes;
    this.#finishes = [];
    this.#finishBytes = 0;
    if (finishes.length === 0) return;
    this.#target.finishMany(finishes.map(({ report }) => report)).then(
      (answers) =>
        finishes.forEach(({ report, waiter }, i) => {
          const answer = answers[i];
          if (answer) waiter.resolve(answer);
          else waiter.reject(new NotStored(`finish of ${report.taskId} attempt ${report.attempt} was not stored`));
        }),
      (error: unknown) => finishes.forEach(({ waiter }) => waiter.reject(error)),
    );
  }

  async #sendBegins(): Promise<void> {
    const begins = this.#begins;
    this.#begins = [];
    try {
      const answers = await this.#target.beginMany(begins.map(({ taskId }) => taskId));
      begins.forEach(({ waiter }, i) => {
        const answer = answers[i] ?? { run: false, reason: "error" };
        if (answer.run) this.#running++;
        waiter.resolve(answer);
      });
    } catch (error) {
      for (const { waiter } of begins) waiter.reject(error);
    }
  }
}
