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
 * The shards new tasks go to: `shards`, but one (the app's own object) for an app with a
 * delivery limit. Shards of one partition could share a limit out, but a partition's shards
 * still retrying beside the next one's would together exceed it: app-wide leases are not built
 * yet (README), and a limit is a promise to the origin, so a limited app is not spread.
 */
export function activeShards(config: AppConfig): number {
  const limits = config.rate_limits;
  return limits.max_concurrent_dispatches === null && limits.max_dispatches_per_second === null ? config.shards : 1;
}

/**
 * The config a shard applies: the app's, its delivery limits split over the app's shards (an
 * app's shards stop taking new tasks once it has a limit, activeShards, but finish those they
 * hold; a share is at least one attempt at a time, or a burst of one).
 */
export function shardConfig(config: AppConfig): AppConfig {
  const n = config.shards;
  const limits = config.rate_limits;
  const share = (limit: number | null) => (limit === null ? null : Math.max(1, Math.floor(limit / n)));
  return {
    ...config,
    rate_limits: {
      max_concurrent_dispatches: share(limits.max_concurrent_dispatches),
      max_dispatches_per_second:
        limits.max_dispatches_per_second === null ? null : limits.max_dispatches_per_second / n,
      max_burst_size: share(limits.max_burst_size),
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
  // A shard emptied by retention has no tables: its results are gone.
  if (!store.exists()) return refs.map(() => null);
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
  // Again after the wait: a retry or redrive may have come in meanwhile.
  const after = store.tasks.counts();
  if ((after["waiting"] ?? 0) + (after["doing"] ?? 0) > 0 || store.notifications.any()) return false;
  return reports.dueAt(Date.now(), store.tasks.currentSeq()) === null;
}
