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
  return nowMs.toString(16).padStart(12, "0").slice(-12) + appNumber.toString(16).padStart(8, "0") + randomHex(6);
}

/** The lowest id a task created at `ms` can have: ids sort by creation time. */
export const firstIdAt = (ms: number): string => ms.toString(16).padStart(12, "0").slice(-12) + "0".repeat(20);

/** The app number a task id routes to, or null when the id is not one of ours. */
export function appNumberOf(taskId: string): number | null {
  if (!TASK_ID.test(taskId)) return null;
  return Number.parseInt(taskId.slice(12, 20), 16);
}
