/**
 * A shard's results, told to its app's own object (the home), which numbers them in the app's
 * one result sequence and pushes them to the app's subscribers (SPEC §6: one feed per app). A
 * result is reported after the commit that made it, in batches (one RPC per commit, not per
 * task); the home keeps the latest shard seq it took, so a batch sent twice counts once. What a
 * crash or a failed RPC left unreported is found again in the shard's own results log, from the
 * home's mark: on the shard's next wake-up (asked once), or on the retry the alarm makes.
 */
import type { TaskRecord } from "../shared/types";
import { log } from "../shared/log";

/** One result as a shard reports it: its seq in the shard and its record. */
export interface ShardResult {
  seq: number;
  record: TaskRecord;
}

/** What the home answers a report with. */
export interface ReportReceipt {
  /** The latest shard seq the home holds. */
  reported: number;
}

/** The home's side of the exchange, as the shard calls it. */
export type ReportResults = (results: ShardResult[]) => Promise<ReportReceipt>;

/** Largest batch per RPC, in bytes of record (bodies included) — RPC messages have a size limit. */
export const REPORT_BATCH_BYTES = 4_000_000;
/** A failed report is tried again this much later, by the alarm. */
export const REPORT_RETRY_MS = 5_000;

export class ShardReports {
  readonly #send: ReportResults;
  /** Results committed, not yet reported, in seq order. */
  #pending: ShardResult[] = [];
  /** The home's mark: every result at or below it is reported; null = unknown (after a wake-up or a failure). */
  #confirmed: number | null = null;
  #running: Promise<void> | null = null;
  /** When the last report failed (null: it did not): the alarm tries again REPORT_RETRY_MS later, not at once. */
  #failedAtMs: number | null = null;

  /**
   * @param send the RPC to the home
   * @param committedAfter the shard's results after a seq, read from its log (one page)
   */
  constructor(
    send: ReportResults,
    readonly committedAfter: (seq: number) => { results: ShardResult[]; done: boolean },
  ) {
    this.#send = send;
  }

  /** A result about to be committed (the group may still roll back: see {@link mark}). */
  add(seq: number, record: TaskRecord): void {
    this.#pending.push({ seq, record });
  }

  /** A savepoint: calling the answer drops what was added after it. */
  mark(): () => void {
    const length = this.#pending.length;
    return () => {
      this.#pending.length = length;
    };
  }

  /** When the alarm must try again (null: nothing is owed, as far as this instance knows). */
  dueAt(nowMs: number, latestSeq: number): number | null {
    const retry = Math.max(nowMs, (this.#failedAtMs ?? nowMs) + REPORT_RETRY_MS);
    if (this.#pending.length > 0) return nowMs + REPORT_RETRY_MS;
    // Unknown after a wake-up: ask at once, once (after a failure, REPORT_RETRY_MS later).
    if (this.#confirmed === null) return latestSeq > 0 ? (this.#failedAtMs === null ? nowMs : retry) : null;
    // Known and nothing pending: everything committed was reported (or passed over: a result
    // retried since is no longer one, and the shard's latest seq may be its).
    return null;
  }

  /** Reports what is pending (after a commit, and from the alarm); one run at a time. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
    if (this.#pending.length === 0 && this.#confirmed !== null) return;
    this.#running = this.#report().finally(() => (this.#running = null));
    await this.#running;
  }

  async #report(): Promise<void> {
    try {
      if (this.#confirmed === null) this.#confirmed = (await this.#send([])).reported;
      // In order from the home's mark: the pending ones follow it, unless a report was lost
      // (or this instance is new: what it owes is in the log).
      while (this.#pending.length > 0 && this.#pending[0]!.seq <= this.#confirmed) this.#pending.shift();
      const next = this.#pending[0]?.seq ?? Infinity;
      if (next !== this.#confirmed + 1) await this.#catchUp(next);
      while (this.#pending.length > 0) {
        const batch = takeBatch(this.#pending);
        this.#confirmed = (await this.#send(batch)).reported;
        if (this.#confirmed < batch.at(-1)!.seq) throw new Error("the app's object did not take the results reported");
        this.#pending.splice(0, batch.length);
      }
      this.#failedAtMs = null;
    } catch (error) {
      log("warn", "shard_report_failed", { hint: "the alarm reports it again" }, error);
      this.#confirmed = null;
      this.#failedAtMs = Date.now();
    }
  }

  /** Reports from the log what lies between the home's mark and `until` (the first pending result). */
  async #catchUp(until: number): Promise<void> {
    for (;;) {
      const page = this.committedAfter(this.#confirmed!);
      const before = page.results.filter((result) => result.seq < until);
      if (before.length === 0) return;
      const from = this.#confirmed!;
      this.#confirmed = (await this.#send(takeBatch(before))).reported;
      if (this.#confirmed <= from) throw new Error("the app's object took none of the results reported");
      if (page.done && before.length === page.results.length && this.#confirmed >= before.at(-1)!.seq) return;
    }
  }

  /** The instance's knowledge is stale (the store was dropped): ask the home again. */
  forget(): void {
    this.#pending = [];
    this.#confirmed = null;
  }
}

function takeBatch(pending: ShardResult[]): ShardResult[] {
  let bytes = 0;
  let n = 0;
  while (n < pending.length) {
    const record = pending[n]!.record;
    const size = record.request.body.length + (record.response?.body.length ?? 0) + 1_000;
    if (n > 0 && bytes + size > REPORT_BATCH_BYTES) break;
    bytes += size;
    n++;
  }
  return pending.slice(0, n);
}
