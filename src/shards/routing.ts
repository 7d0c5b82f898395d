/**
 * Where an app's tasks are stored. An app with `shards` > 1 spreads them over shard objects
 * named by (app, time partition, k): the partition is the slice of creation time the task was
 * made in (`partition` seconds long, counted from the unix epoch), k one of `shards` objects
 * of that partition. A task id carries its partition's length and k (shared/task-id.ts), so
 * with its time it names its shard: reads, cancels, retries and deliveries reach the task's
 * object with no lookup. The app's own object (its home) keeps the config, the keys, the
 * subscribers and the tasks stored before the app had shards.
 */
import { createdMsOf, shardRouteOf, type ShardRoute } from "../shared/task-id";

/** One shard object: its name, the partition it holds and its index in it. */
export interface ShardPlace {
  app: string;
  /** The Durable Object's name: `<app>/<partition start, unix s>/<length, minutes>/<k>`. */
  name: string;
  startMs: number;
  endMs: number;
  route: ShardRoute;
}

/** The shard of `app` holding tasks created at `nowMs` with index `k`, partitions `partitionSeconds` long. */
export function shardPlace(app: string, partitionSeconds: number, k: number, nowMs: number): ShardPlace {
  const partitionMinutes = Math.round(partitionSeconds / 60);
  return placeOf(app, { partitionMinutes, shard: k }, nowMs);
}

function placeOf(app: string, route: ShardRoute, atMs: number): ShardPlace {
  const lengthMs = route.partitionMinutes * 60_000;
  const startMs = Math.floor(atMs / lengthMs) * lengthMs;
  const name = `${app}/${startMs / 1000}/${route.partitionMinutes}/${route.shard}`;
  return { app, name, startMs, endMs: startMs + lengthMs, route };
}

/** The shard a task id of `app` routes to; null for a task its app's own object holds. */
export function shardOfTask(app: string, taskId: string): ShardPlace | null {
  const route = shardRouteOf(taskId);
  return route ? placeOf(app, route, createdMsOf(taskId)) : null;
}

/** The name of the object that stores task `taskId` of `app`: a shard's, or the app's own. */
export const storeNameOf = (app: string, taskId: string): string => shardOfTask(app, taskId)?.name ?? app;

/**
 * The shard index of a new task: a deduplication id's hash (duplicates meet in one shard), or
 * any shard.
 */
export function pickShard(shards: number, deduplicationId: string | null): number {
  if (shards <= 1) return 0;
  if (deduplicationId === null) return Math.floor(Math.random() * shards);
  // FNV-1a: stable across isolates and versions, which a duplicate's routing depends on.
  let hash = 0x811c9dc5;
  for (let i = 0; i < deduplicationId.length; i++) {
    hash ^= deduplicationId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

/**
 * The id time of a task created at `nowMs` in `place`: its own time, held inside the partition
 * (the Worker picked the partition by its clock; this object's may differ by a little), so the
 * id routes back here.
 */
export const timeInside = (place: ShardPlace, nowMs: number): number =>
  Math.min(Math.max(nowMs, place.startMs), place.endMs - 1);
