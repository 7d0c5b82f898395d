/**
 * Task ids: 32 lowercase hex characters (Qiniu's shape), laid out as
 *
 *   tttttttttttt aaaaaaaa rrrrrrrrrrrr
 *   48-bit ms    32-bit   48 random bits
 *   timestamp    app no.
 *
 * so ids sort roughly by creation time and carry the app's registry number:
 * `GET /v1/task/<id>` finds the app's Durable Object without a lookup by id.
 */
import { randomHex } from "./encoding";

const TASK_ID = /^[0-9a-f]{32}$/;

export function newTaskId(appNumber: number, nowMs: number): string {
  return timePrefix(nowMs) + appNumber.toString(16).padStart(8, "0") + randomHex(6);
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
  return Number.parseInt(taskId.slice(12, 20), 16);
}
