/**
 * Task ids: 32 lowercase hex characters (Qiniu's shape), laid out as
 *
 *   tttttttttttt aaaaaaaa rrrrrrrrrrrr
 *   48-bit ms    32-bit   48 random bits
 *   timestamp    app no.
 *
 * so ids sort roughly by creation time and carry the app's registry number:
 * `GET /v1/task/<id>` finds the app's Durable Object without a lookup by id. A task stored
 * in a shard object (shards/routing.ts) sets the app number's top bit and carries its route:
 *
 *   tttttttttttt 8aaaaaaa mmmm kk rrrrrr
 *                         │    │  24 random bits
 *                         │    shard index k (0-63)
 *                         partition length in minutes: with the time, names the partition
 */
import { randomHex } from "./encoding";

const TASK_ID = /^[0-9a-f]{32}$/;
const SHARDED = 0x8000_0000;

export function newTaskId(appNumber: number, nowMs: number): string {
  return timePrefix(nowMs) + appNumber.toString(16).padStart(8, "0") + randomHex(6);
}

/** Where a sharded task is stored: its partition's length and its shard's index. */
export interface ShardRoute {
  partitionMinutes: number;
  shard: number;
}

/** The id of a task created at `nowMs` in shard `route` (its partition must hold `nowMs`). */
export function newShardTaskId(appNumber: number, route: ShardRoute, nowMs: number): string {
  return shardIdPrefix(appNumber, route, nowMs) + randomHex(3);
}

/** The first 26 digits of a sharded id: everything but its random part. */
export function shardIdPrefix(appNumber: number, route: ShardRoute, nowMs: number): string {
  return (
    timePrefix(nowMs) +
    ((appNumber | SHARDED) >>> 0).toString(16).padStart(8, "0") +
    route.partitionMinutes.toString(16).padStart(4, "0") +
    route.shard.toString(16).padStart(2, "0")
  );
}

/** The shard route a task id carries; null for a task stored in its app's own object. */
export function shardRouteOf(taskId: string): ShardRoute | null {
  if (!TASK_ID.test(taskId) || (Number.parseInt(taskId.slice(12, 20), 16) & SHARDED) === 0) return null;
  const partitionMinutes = Number.parseInt(taskId.slice(20, 24), 16);
  const shard = Number.parseInt(taskId.slice(24, 26), 16);
  return partitionMinutes > 0 ? { partitionMinutes, shard } : null;
}

/**
 * The first 12 digits of the ids of tasks created at `ms`. As a string it sorts before every
 * such id and after every id of an earlier ms: the bound of a creation-time range of ids.
 */
export const timePrefix = (ms: number): string => ms.toString(16).padStart(12, "0").slice(-12);

/** When the task of `id` was created (unix ms). */
export const createdMsOf = (id: string): number => Number.parseInt(id.slice(0, 12), 16);

/** The app number a task id routes to, or null when the id is not one of ours. */
export function appNumberOf(taskId: string): number | null {
  if (!TASK_ID.test(taskId)) return null;
  return (Number.parseInt(taskId.slice(12, 20), 16) & ~SHARDED) >>> 0;
}
