/**
 * What a shard object holds of its app, copied from the app's own object (the home): the
 * config, the identity (its number, signing secrets) and the keys, sealed as the home stores
 * them. The home pushes a new copy to every shard before a change's answer (a PATCH, a key made
 * or revoked, a secret rotated), so a shard serves each request with what holds when it
 * arrives and no request asks the home. Copies are versioned: one arriving late is ignored.
 */
import type { AppConfig } from "../config/app-config";
import type { AppKeys, SealedKey } from "../app/app-keys";
import { toRecord, type AppStore, type MetaStore } from "../app/store";
import type { TaskRecord } from "../shared/types";
import type { ShardReports, ShardResult } from "./shard-reports";
import type { AppIdentity } from "../app/signing-secrets";
import type { ShardPlace } from "./routing";

export interface ShardSnapshot {
  /** Grows with every change the home makes (meta "shard_version"). */
  version: number;
  place: ShardPlace;
  config: AppConfig;
  identity: AppIdentity;
  keys: SealedKey[];
}

/**
 * The shards new tasks go to: `shards`, but no more than the attempts allowed at once, so each
 * shard's share of that limit is one attempt or more and the shares add up to no more than it.
 */
export function activeShards(config: AppConfig): number {
  const concurrent = config.rate_limits.max_concurrent_dispatches;
  return concurrent === null ? config.shards : Math.max(1, Math.min(config.shards, concurrent));
}

/**
 * The config a shard applies: the app's, with its delivery limits split over the shards new
 * tasks go to (README: a shard enforces its share; a rate's burst is at least one).
 */
export function shardConfig(config: AppConfig): AppConfig {
  const n = activeShards(config);
  const limits = config.rate_limits;
  return {
    ...config,
    rate_limits: {
      max_concurrent_dispatches:
        limits.max_concurrent_dispatches === null ? null : Math.floor(limits.max_concurrent_dispatches / n),
      max_dispatches_per_second:
        limits.max_dispatches_per_second === null ? null : limits.max_dispatches_per_second / n,
      max_burst_size: limits.max_burst_size === null ? null : Math.max(1, Math.floor(limits.max_burst_size / n)),
    },
  };
}

/** Writes a shard's copy of its app (inside the caller's transaction). */
export function storeSnapshot(meta: MetaStore, keys: AppKeys, snapshot: ShardSnapshot): void {
  meta.set("config", JSON.stringify(snapshot.config));
  meta.set("identity", JSON.stringify(snapshot.identity));
  meta.set("shard", JSON.stringify(snapshot.place));
  meta.set("shard_version", String(snapshot.version));
  keys.replaceAll(snapshot.keys);
}

/** A shard's results after its seq `after`, from its log (one page): what it reports again. */
export function resultsAfter(store: AppStore, app: string, after: number): { results: ShardResult[]; done: boolean } {
  const { rows, done } = store.reads.finishedSince(after);
  return { results: rows.map((row) => ({ seq: row.seq!, record: toRecord(row, app) })), done };
}

/** Records of a shard's tasks, each null when gone or no longer result `seq` (retried since). */
export function recordsOf(store: AppStore, app: string, refs: { id: string; seq: number }[]): (TaskRecord | null)[] {
  return refs.map(({ id, seq }) => {
    const row = store.tasks.get(id);
    return row && row.seq === seq ? toRecord(row, app) : null;
  });
}

/**
 * Whether a shard has nothing left to do: every task ended, no notification pending, every
 * result reported to its app (asked first: a shard woken for this does not know). Only then
 * may its partition's retention drop it whole.
 */
export async function shardDone(store: AppStore, reports: ShardReports): Promise<boolean> {
  if (!store.exists()) return true;
  const { waiting = 0, doing = 0 } = store.tasks.counts();
  if (waiting + doing > 0 || store.notifications.any()) return false;
  await reports.flush();
  return reports.dueAt(Date.now(), store.tasks.currentSeq()) === null;
}
