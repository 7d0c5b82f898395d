/**
 * App-wide answers from the answers of the app's own object and of each of its shards:
 * listings merged under one cursor, counts and statistics summed. Pure functions.
 */
import type { TaskPage } from "../app/contract";
import type { ShardRow } from "./shard-map";

/**
 * One page, newest first, from pages each source answered for the same query: ids are
 * comparable across shards (they begin with their creation time), so the page is the `limit`
 * highest, and the cursor (its lowest id) bounds every source's next page alike.
 */
export function mergePages(pages: TaskPage[], limit: number): TaskPage {
  const all = pages.flatMap((page) => page.tasks).sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const tasks = all.slice(0, limit);
  const more = all.length > limit || pages.some((page) => page.cursor !== null);
  return { tasks, cursor: more && tasks.length > 0 ? tasks[tasks.length - 1]!.id : null };
}

/** Counts by name summed. */
export function sumCounts(counts: Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const one of counts) for (const [key, n] of Object.entries(one)) sum[key] = (sum[key] ?? 0) + n;
  return sum;
}

/** What one object's share of the app's statistics holds (app/stats.ts statsReport). */
export interface StatsShare {
  counts: Record<string, number>;
  oldest_waiting_age: number | null;
  last_minute: { attempts: number; successes: number };
  last_hour: { attempts: number; successes: number };
  latency_ms: unknown;
  resends: number;
  in_flight: number;
}

/**
 * The app's statistics from its objects' shares: counts, attempts, re-sends and messages in
 * flight summed, the oldest waiting task the oldest of any; latency percentiles cannot be added
 * up, so they are those of the object that made the most attempts in the last hour.
 */
export function mergeStats(home: Record<string, unknown>, shards: StatsShare[]): Record<string, unknown> {
  const all = [home as unknown as StatsShare, ...shards];
  const ages = all.map((share) => share.oldest_waiting_age).filter((age): age is number => age !== null);
  const busiest = all.reduce((a, b) => (b.last_hour.attempts > a.last_hour.attempts ? b : a));
  const sum = (pick: (share: StatsShare) => { attempts: number; successes: number }) => ({
    attempts: all.reduce((n, share) => n + pick(share).attempts, 0),
    successes: all.reduce((n, share) => n + pick(share).successes, 0),
  });
  return {
    ...home,
    counts: sumCounts(all.map((share) => share.counts)),
    oldest_waiting_age: ages.length > 0 ? Math.max(...ages) : null,
    last_minute: sum((share) => share.last_minute),
    last_hour: sum((share) => share.last_hour),
    latency_ms: busiest.latency_ms,
    resends: all.reduce((n, share) => n + share.resends, 0),
    in_flight: all.reduce((n, share) => n + share.in_flight, 0),
  };
}

/**
 * `stats.storage` (issue: partitions in unix seconds): per partition with shard objects, how many
 * shards, tasks (every state) and bytes (the objects' SQLite size) it holds.
 */
export function storageReport(shards: { row: ShardRow; stats: StatsShare; bytes: number }[]): {
  partitions: { start: number; end: number; shards: number; tasks: number; bytes: number }[];
} {
  const partitions = new Map<string, { start: number; end: number; shards: number; tasks: number; bytes: number }>();
  for (const { row, stats, bytes } of shards) {
    const key = `${row.start_ms}-${row.end_ms}`;
    const partition = partitions.get(key) ?? {
      start: row.start_ms / 1000,
      end: row.end_ms / 1000,
      shards: 0,
      tasks: 0,
      bytes: 0,
    };
    const { waiting = 0, doing = 0, success = 0, failed = 0 } = stats.counts;
    partition.shards++;
    partition.tasks += waiting + doing + success + failed;
    partition.bytes += bytes;
    partitions.set(key, partition);
  }
  return { partitions: [...partitions.values()].sort((a, b) => a.start - b.start || a.end - b.end) };
}
