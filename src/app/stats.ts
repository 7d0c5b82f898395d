/**
 * Delivery statistics of an app, in fixed-size structures (never a scan of its tasks):
 * latency histograms with logarithmic buckets 10 % wide (a percentile read from one is
 * within ±5 % of the true value), and per-minute counters of attempts and successes over
 * the last hour. Kept in the object's memory and written to SQLite at most every 10 s, so
 * an eviction loses at most that much.
 */
import type { AppConfig } from "../config/app-config";
import type { DeliveryState } from "./contract";
import type { AppStore } from "./store";

/** Bucket i holds values in [GROWTH^i, GROWTH^(i+1)) ms; the last one everything beyond ~7 h. */
const GROWTH = 1.1;
const BUCKETS = 180;
const MINUTES = 60;

export function bucketOf(ms: number): number {
  if (ms < 1) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log(ms) / Math.log(GROWTH)));
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** The `q` quantile of a histogram: the geometric middle of the bucket holding it. Pure. */
export function quantile(counts: number[], q: number): number | null {
  const total = counts.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return Math.round(GROWTH ** (i + 0.5));
  }
  return null;
}

export function percentiles(counts: number[]): Percentiles {
  return {
    count: counts.reduce((sum, n) => sum + n, 0),
    p50: quantile(counts, 0.5),
    p90: quantile(counts, 0.9),
    p99: quantile(counts, 0.99),
  };
}

/** What is stored (JSON in the object's meta table). */
export interface StatsState {
  /** Submit → finish (10 or 11), ms. */
  finish: number[];
  /** One attempt at the origin, ms. */
  attempt: number[];
  /** [minute (unix ms / 60 000), attempts, successes], one slot per minute of the last hour. */
  minutes: [number, number, number][];
}

export const emptyStats = (): StatsState => ({
  finish: new Array<number>(BUCKETS).fill(0),
  attempt: new Array<number>(BUCKETS).fill(0),
  minutes: [],
});

export class AppStats {
  #state: StatsState;
  #dirty = false;
  #savedAt = 0;

  constructor(stored: string | null) {
    const parsed = stored ? (JSON.parse(stored) as Partial<StatsState>) : {};
    this.#state = { ...emptyStats(), ...parsed };
  }

  attemptEnded(durationMs: number, success: boolean, nowMs: number): void {
    this.#state.attempt[bucketOf(durationMs)]!++;
    const minute = Math.floor(nowMs / 60_000);
    const slot = this.#state.minutes.find(([at]) => at === minute);
    if (slot) {
      slot[1]++;
      if (success) slot[2]++;
    } else {
      this.#state.minutes = [
        ...this.#state.minutes.filter(([at]) => at > minute - MINUTES),
        [minute, 1, success ? 1 : 0],
      ];
    }
    this.#dirty = true;
  }

  taskFinished(latencyMs: number): void {
    this.#state.finish[bucketOf(latencyMs)]!++;
    this.#dirty = true;
  }

  /** Attempts and successes over the last `minutes` minutes. */
  recent(nowMs: number, minutes: number): { attempts: number; successes: number } {
    const minute = Math.floor(nowMs / 60_000);
    let attempts = 0;
    let successes = 0;
    for (const [at, n, ok] of this.#state.minutes) {
      if (at > minute - minutes) {
        attempts += n;
        successes += ok;
      }
    }
    return { attempts, successes };
  }

  latency(): { submit_to_finish: Percentiles; attempt: Percentiles } {
    return { submit_to_finish: percentiles(this.#state.finish), attempt: percentiles(this.#state.attempt) };
  }

  /** The JSON to store when it changed and was last stored over 10 s ago (or `force`); else null. */
  toSave(nowMs: number, force = false): string | null {
    if (!this.#dirty || (!force && nowMs - this.#savedAt < 10_000)) return null;
    this.#dirty = false;
    this.#savedAt = nowMs;
    return JSON.stringify(this.#state);
  }
}

/** `GET /v1/apps/<name>/stats`, from the counters, the statistics and one seek for the oldest waiting task. */
export function statsReport(
  config: AppConfig,
  store: AppStore,
  stats: AppStats,
  delivery: DeliveryState,
  now: number,
): Record<string, unknown> {
  const { resends, ...counts } = store.tasks.counts();
  const oldest = store.reads.oldestWaitingCreatedMs();
  return {
    app: config.name,
    counts,
    oldest_waiting_age: oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000)),
    last_minute: stats.recent(now, 1),
    last_hour: stats.recent(now, 60),
    latency_ms: stats.latency(),
    resends,
    in_flight: store.tasks.inFlight(),
    rate_limits: config.rate_limits,
    circuit_breaker: config.circuit_breaker,
    delivery,
  };
}
