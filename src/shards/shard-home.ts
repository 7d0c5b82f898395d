/**
 * The app's own object's side of its shards: opening a shard (a row here, the app's copy
 * pushed to it), pushing every change to all of them, asking all of them (listings, counts,
 * bulk jobs), and taking their results into the app's one result sequence.
 */
import type { AppConfig } from "../config/app-config";
import type { SealedKey } from "../app/app-keys";
import type { AppIdentity } from "../app/signing-secrets";
import type { MetaStore } from "../app/store";
import { ShardMap, type ShardRow } from "./shard-map";
import { activeShards, shardConfig, type ShardSnapshot } from "./shard-sync";
import { pickShard, shardPlace, storeNameOf, type ShardPlace } from "./routing";
import type { RemoteResult } from "../app/store";
import type { Outcome } from "../http/errors";
import { mergeStats, storageReport, sumCounts, type StatsShare } from "./app-wide";
import type { ReportReceipt, ShardResult } from "./shard-reports";
import type { TaskRecord } from "../shared/types";
import type { Purged, Redriven, SubmitInput, Submitted, TaskPage, TaskQuery } from "../app/contract";
import { ADMIN, type Caller } from "../auth/authenticate";
import type { ResultsLog } from "../app/store/results-log";
import { createdMsOf, timePrefix } from "../shared/task-id";

/** An app object (the own one or a shard) as the shards' calls reach it: the RPC methods they use. */
export interface ShardStub {
  syncShard(snapshot: ShardSnapshot): Promise<void>;
  submit(input: SubmitInput): Promise<Outcome<Submitted>>;
  listTasks(caller: Caller, query: TaskQuery): Promise<Outcome<TaskPage>>;
  redrive(caller: Caller, input: unknown): Promise<Outcome<Redriven>>;
  purge(caller: Caller, input: unknown): Promise<Outcome<Purged>>;
  shardStats(): Promise<{ stats: string; bytes: number } | null>;
  shardRecords(refs: { id: string; seq: number }[]): Promise<(TaskRecord | null)[]>;
  reportResults(shard: string, results: ShardResult[]): Promise<ReportReceipt>;
  dropShard(whenDone?: boolean): Promise<boolean>;
}

export interface ShardHomeHost {
  /** The object of this name (the app's own, or a shard). */
  stub: (name: string) => ShardStub;
  sql: SqlStorage;
  meta: () => MetaStore;
  config: () => AppConfig | null;
  identity: () => AppIdentity | null;
  keys: () => SealedKey[];
  /** The app's results log (the shards' results are logged in it). */
  log: () => ResultsLog;
}

/** A partition's shard still busy past retention is asked again this much later. */
export const RETIRE_AGAIN_MS = 60_000;
/** A copy a shard did not take is pushed again this much later. */
export const PUSH_AGAIN_MS = 5_000;

export class ShardHome {
  readonly #host: ShardHomeHost;
  #retireAgainAt: number | null = null;
  /** When to push again to shards that missed a copy (null: none did, as far as this instance knows). */
  #pushAgainAt: number | null = null;
  readonly map: ShardMap;

  constructor(host: ShardHomeHost) {
    this.#host = host;
    this.map = new ShardMap(host.sql);
  }

  stub(name: string): ShardStub {
    return this.#host.stub(name);
  }

  #version(): number {
    return Number(this.#host.meta().get("shard_version") ?? "0");
  }

  #snapshot(place: ShardPlace, version: number): ShardSnapshot | null {
    const config = this.#host.config();
    const identity = this.#host.identity();
    if (!config || !identity) return null;
    return { version, place, config: shardConfig(config), identity, keys: this.#host.keys() };
  }

  /** Opens in progress: a submission for a shard being opened waits for it. */
  readonly #opening = new Map<string, Promise<void>>();

  /** Makes `place` one of the app's shards (its row, then its copy of the app), once. */
  async open(place: ShardPlace): Promise<void> {
    const opening = this.#opening.get(place.name);
    if (opening) return opening;
    if (this.map.has(place.name)) return;
    const snapshot = this.#snapshot(place, this.#version());
    if (!snapshot) return;
    // The row only once the shard holds its copy: a failed sync is tried again by the next submission.
    const synced = this.stub(place.name)
      .syncShard(snapshot)
      .then(async () => {
        this.map.add(place, snapshot.version);
        // A change pushed meanwhile passed this shard by (it had no row yet): it gets the new copy.
        if (this.#version() !== snapshot.version)
          await this.#push([this.map.list().find((r) => r.name === place.name)!]);
      })
      .finally(() => this.#opening.delete(place.name));
    this.#opening.set(place.name, synced);
    return synced;
  }

  /**
   * A submission of an app with shards that reached the app's own object (the Worker knew no
   * route yet, or its shard was not open: a new partition) goes on to its shard, opened first.
   */
  async forward(input: SubmitInput, config: AppConfig): Promise<Outcome<Submitted>> {
    const k = pickShard(activeShards(config), input.options.deduplicationId);
    const place = shardPlace(config.name, config.partition, k, Date.now());
    await this.open(place);
    return this.stub(place.name).submit({ ...input, shard: place.name });
  }

  /** The app changed (config, keys, identity): every shard gets the new copy before the change is answered. */
  async changed(): Promise<void> {
    const rows = this.map.list();
    if (rows.length === 0) return;
    this.#host.meta().set("shard_version", String(this.#version() + 1));
    await this.#push(rows);
  }

  /**
   * Pushes the current copy to `rows`, recording each shard that took it. One that did not (an
   * RPC failed) lags: the alarm pushes again (lagging), so a revoked key cannot outlive a failure.
   */
  async #push(rows: ShardRow[]): Promise<void> {
    const version = this.#version();
    const pushed = await Promise.all(
      rows.map(async (row) => {
        const snapshot = this.#snapshot(placeOfRow(row), version);
        if (!snapshot) return false;
        return this.stub(row.name)
          .syncShard(snapshot)
          .then(() => true)
          .catch(() => false);
      }),
    );
    rows.forEach((row, i) => pushed[i] && this.map.setSynced(row.name, version));
    if (!pushed.every(Boolean)) this.#pushAgainAt = Date.now() + PUSH_AGAIN_MS;
  }

  /** Shards holding an older copy than the app's (a push failed): pushed again, by the alarm. */
  async pushLagging(nowMs: number): Promise<void> {
    if (this.#pushAgainAt === null || this.#pushAgainAt > nowMs) return;
    this.#pushAgainAt = null;
    const version = this.#version();
    const lagging = this.map.list().filter((row) => row.synced_version < version);
    if (lagging.length > 0) await this.#push(lagging);
  }

  /** Every shard's page of a listing (those whose partition cannot hold such ids are not asked). */
  async pages(query: TaskQuery): Promise<TaskPage[]> {
    const rows = this.map
      .list()
      .filter(
        (row) =>
          (query.below === null || timePrefix(row.start_ms) < query.below) &&
          (query.from === null || timePrefix(row.end_ms) > query.from),
      );
    const pages = await Promise.all(rows.map((row) => this.stub(row.name).listTasks(ADMIN, query)));
    return pages.map((page) => (page.ok ? page.value : { tasks: [], cursor: null }));
  }

  /** Every shard's share of the app's statistics, with its partition and bytes. */
  async stats(): Promise<{ row: ShardRow; stats: StatsShare; bytes: number }[]> {
    const shares = await this.each(async (shard, row) => ({ row, share: await shard.shardStats() }));
    return shares.flatMap(({ row, share }) =>
      share ? [{ row, stats: JSON.parse(share.stats) as StatsShare, bytes: share.bytes }] : [],
    );
  }

  /** Records of shards' results for a replay, in the order asked (one RPC per shard). */
  async records(app: string, refs: RemoteResult[]): Promise<(TaskRecord | null)[]> {
    const byShard = new Map<string, number[]>();
    refs.forEach((ref, i) => {
      const name = storeNameOf(app, ref.id);
      byShard.set(name, [...(byShard.get(name) ?? []), i]);
    });
    const records: (TaskRecord | null)[] = refs.map(() => null);
    await Promise.all(
      [...byShard].map(async ([name, indexes]) => {
        const asked = indexes.map((i) => ({ id: refs[i]!.id, seq: refs[i]!.shardSeq }));
        const answered = (await this.stub(name).shardRecords(asked)) as (TaskRecord | null)[];
        indexes.forEach((i, n) => (records[i] = answered[n] ?? null));
      }),
    );
    return records;
  }

  /** The app's counts: the own object's and every shard's. */
  async appCounts(own: Record<string, number>): Promise<Record<string, number>> {
    const shards = await this.stats();
    return sumCounts([own, ...shards.map(({ stats }) => ({ ...stats.counts, resends: stats.resends }))]);
  }

  /** The app's statistics (`GET /v1/apps/<name>/stats`): the own object's, with every shard's and their storage. */
  async appStats(own: Record<string, unknown>): Promise<Record<string, unknown>> {
    const shards = await this.stats();
    if (shards.length === 0) return own;
    return {
      ...mergeStats(
        own,
        shards.map(({ stats }) => stats),
      ),
      storage: storageReport(shards),
    };
  }

  /** When the oldest partition's shards may go (its end plus retention), or a check of them is due again. */
  retireAt(): number | null {
    const config = this.#host.config();
    const rows = this.map.list();
    if (!config || rows.length === 0) return null;
    const first = Math.min(...rows.map((row) => row.end_ms)) + config.retention * 1000;
    const retire = Math.max(first, this.#retireAgainAt ?? 0);
    // After a wake-up: a shard the rows show behind is pushed to at once.
    const version = this.#version();
    if (this.#pushAgainAt === null && rows.some((row) => row.synced_version < version)) this.#pushAgainAt = Date.now();
    return this.#pushAgainAt === null ? retire : Math.min(retire, this.#pushAgainAt);
  }

  /**
   * Drops the shards of partitions past retention once nothing in them is left to do: each
   * empties itself whole (deleteAll, no row-by-row deletes), and its row goes. One still busy
   * (a task unfinished, a result unreported) is asked again RETIRE_AGAIN_MS later; its own alarm
   * expires what outlives retention.
   */
  async retire(nowMs: number): Promise<void> {
    const config = this.#host.config();
    if (!config) return;
    await this.pushLagging(nowMs);
    const due = this.map.list().filter((row) => row.end_ms + config.retention * 1000 <= nowMs);
    if (due.length === 0) return;
    const dropped = await Promise.all(
      due.map((row) =>
        this.stub(row.name)
          .dropShard(true)
          .catch(() => false),
      ),
    );
    due.forEach((row, i) => dropped[i] && this.map.remove(row.name));
    this.#retireAgainAt = dropped.every(Boolean) ? null : nowMs + RETIRE_AGAIN_MS;
    trimLog(this.#host.log(), nowMs, config.retention * 1000);
  }

  /** The app is deleted: every shard emptied, the list with it (the caller drops its tables). */
  async dropAll(): Promise<void> {
    await this.each((shard) => shard.dropShard());
    this.map.forget();
  }

  /**
   * Takes a shard's results in seq order, each once (`number` gives it the app's seq, under the
   * ref `<task id>:<shard seq>` its log keeps), and answers the shard's seq now reported. A shard
   * the app does not know (one of a deleted app of the same name) is told all is taken.
   */
  take(shard: string, results: ShardResult[], number: (record: TaskRecord, ref: string) => void): ReportReceipt {
    if (!this.map.has(shard)) return { reported: Number.MAX_SAFE_INTEGER };
    let reported = this.map.reported(shard);
    for (const { seq, record } of results) {
      if (seq <= reported) continue;
      number(record, `${record.id}:${seq}`);
      reported = seq;
    }
    this.map.setReported(shard, reported);
    return { reported };
  }

  /** Asks every shard (in parallel) and answers their answers, in the shards' order. */
  async each<T>(ask: (shard: ShardStub, row: ShardRow) => Promise<T>): Promise<T[]> {
    return Promise.all(this.map.list().map((row) => ask(this.stub(row.name), row)));
  }
}

/** A row's place, as far as a copy of the app needs it (the name carries the route). */
function placeOfRow(row: ShardRow): ShardPlace {
  const [app, , minutes, k] = row.name.split("/");
  return {
    app: app!,
    name: row.name,
    startMs: row.start_ms,
    endMs: row.end_ms,
    route: { partitionMinutes: Number(minutes), shard: Number(k) },
  };
}

/**
 * Drops the head of the app's results log while it holds only shards' results (`<id>:<seq>`) of
 * tasks created more than twice the retention ago: a result is kept `retention` after it finished,
 * and a task finishes at most `retention` after its creation, so none of them is replayed any more.
 * The log goes a row at a time (results-log.ts): answers the rows written.
 */
export function trimLog(log: ResultsLog, nowMs: number, retentionMs: number): number {
  const before = nowMs - 2 * retentionMs;
  let through = 0;
  for (const entry of log.after(0)) {
    if (!entry.id.includes(":") || createdMsOf(entry.id) >= before) break;
    through = entry.seq;
  }
  return through > 0 ? log.dropThrough(through) : 0;
}
