/**
 * The attempts running now, kept in memory and not in the tasks table: a `begin` writes nothing
 * (a row and an index entry saved per task). A running task's row stays waiting (state 0, with
 * the attempts made before this one); readers see the attempt overlaid. The
 * attempt's end is the one write. Changes made inside a group commit are journaled, so a
 * savepoint or group that rolls back takes its begins and finishes back with it.
 */
import { JournaledMap } from "./journaled-map";
import type { TaskRow } from "./rows";

/** An attempt running now. */
export interface RunningAttempt {
  attempt: number;
  /** When it is presumed lost (its consumer gone). */
  leaseMs: number;
  startedMs: number;
  /** The name the consumer gave the begin (see PutBack); absent for a single `begin` and an adopted attempt. */
  run?: string;
}

export class RunningAttempts extends JournaledMap<string, RunningAttempt> {
  /** Moves an attempt's lease (tests end one early); false when `id` does not run. */
  setLease(id: string, leaseMs: number): boolean {
    const attempt = this.get(id);
    if (!attempt) return false;
    this.replace(id, { ...attempt, leaseMs });
    return true;
  }

  /** Forgets an attempt whose task is gone (deleted under it); not journaled. */
  forget(id: string): void {
    this.replace(id, null);
  }

  // ---- reads ---------------------------------------------------------------------------

  /** The row as readers see it: a running attempt overlaid (state 1, its number and lease). */
  overlay(row: TaskRow): TaskRow {
    const attempt = row.state === 0 ? this.get(row.id) : undefined;
    if (!attempt) return row;
    return {
      ...row,
      state: 1,
      attempts: attempt.attempt,
      lease_ms: attempt.leaseMs,
      first_attempt_ms: row.first_attempt_ms ?? attempt.startedMs,
    };
  }

  /** When the first lease runs out; null when nothing runs. */
  firstLeaseEnd(): number | null {
    let first: number | null = null;
    for (const { leaseMs } of this.values()) if (first === null || leaseMs < first) first = leaseMs;
    return first;
  }

  /** Up to `limit` task ids whose attempt's lease ran out by `nowMs`, the longest gone first. */
  expired(nowMs: number, limit: number): string[] {
    return [...this.entries()]
      .filter(([, attempt]) => attempt.leaseMs <= nowMs)
      .sort(([, a], [, b]) => a.leaseMs - b.leaseMs)
      .slice(0, limit)
      .map(([id]) => id);
  }
}
