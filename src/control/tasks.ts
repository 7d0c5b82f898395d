/** Task records (SPEC §4): read, list, cancel, retry. */
import type { IRequest } from "itty-router";
import { positiveInteger, queryParam, unixSeconds, type ControlContext } from "./context";
import { callerFor } from "./callers";
import type { Permission } from "../auth/access-keys";
import type { Caller } from "../auth/authenticate";
import { badRequest, jsonResponse, notFound, unwrap, type Outcome } from "../http/errors";
import { APP_NAME } from "../http/hosts";
import { appNameOf, appQueue } from "../app/stubs";
import { storeNameOf } from "../shards/routing";
import { appNumberOf, timePrefix } from "../shared/task-id";
import type { TaskRecord, TaskState } from "../shared/types";

const noSuchTask = (id: string) => notFound("task_not_found", `no such task: ${id}`);

/**
 * The app a task id routes to (from the number inside the id) and the caller for it. A key
 * of another app gets the same 404 as an unknown id: ids of other tenants are not confirmed.
 */
async function taskTarget(
  request: IRequest,
  context: ControlContext,
  permission: Permission,
): Promise<{ id: string; app: string; caller: Caller }> {
  const id = request.params["id"] ?? "";
  const number = appNumberOf(id);
  const app = number === null ? null : await appNameOf(context.env, number);
  if (!app) {
    // Still 401 for a bad signature: an unknown id is no reason to skip authentication.
    await callerFor(context, "", permission, () => noSuchTask(id));
    throw noSuchTask(id);
  }
  return { id, app, caller: await callerFor(context, app, permission, () => noSuchTask(id)) };
}

/**
 * Asks the object that stores the task. A shard emptied by retention knows no key any more: for
 * a key its app's own object verifies, the task is gone (404), not the key bad (401).
 */
async function askStore(
  context: ControlContext,
  { id, app, caller }: { id: string; app: string; caller: Caller },
  ask: (store: ReturnType<typeof appQueue>) => Promise<Outcome<TaskRecord>>,
): Promise<Response> {
  const outcome = await ask(appQueue(context.env, storeNameOf(app, id)));
  if (!outcome.ok && outcome.error.status === 401 && caller.kind === "key" && storeNameOf(app, id) !== app) {
    if ((await appQueue(context.env, app).identify(caller, context.body)).ok) throw noSuchTask(id);
  }
  return jsonResponse(JSON.stringify(unwrap(outcome)), 200, context.reqId);
}

export async function getTask(request: IRequest, context: ControlContext): Promise<Response> {
  const target = await taskTarget(request, context, "query");
  return askStore(context, target, (store) => store.getTask(target.caller, target.id));
}

export async function cancelTask(request: IRequest, context: ControlContext): Promise<Response> {
  const target = await taskTarget(request, context, "manage");
  return askStore(context, target, (store) => store.cancel(target.caller, target.id));
}

export async function retryTask(request: IRequest, context: ControlContext): Promise<Response> {
  const target = await taskTarget(request, context, "manage");
  return askStore(context, target, (store) => store.retry(target.caller, target.id));
}

const STATES = new Set([0, 1, 10, 11]);

export async function listTasks(request: IRequest, context: ControlContext): Promise<Response> {
  const app = queryParam(request.query, "app");
  if (!app || !APP_NAME.test(app)) throw badRequest("invalid_app", "app is required and must be an app name");
  const stateText = queryParam(request.query, "state");
  const state = stateText === null || stateText === "" ? null : Number(stateText);
  if (state !== null && !STATES.has(state)) throw badRequest("invalid_state", "state must be 0, 1, 10 or 11");
  const limit = positiveInteger(queryParam(request.query, "limit"), 20, 100, "limit");
  const cursor = queryParam(request.query, "cursor");
  if (cursor !== null && !/^[0-9a-f]{32}$/.test(cursor)) throw badRequest("invalid_cursor", "cursor must be a task id");
  const createdAfter = unixSeconds(queryParam(request.query, "created_after"), "created_after");
  const createdBefore = unixSeconds(queryParam(request.query, "created_before"), "created_before");
  const caller = await callerFor(context, app, "query");
  const beforeId = createdBefore === null ? null : timePrefix(createdBefore * 1000);
  const below = cursor === null ? beforeId : beforeId === null || cursor < beforeId ? cursor : beforeId;
  const from = createdAfter === null ? null : timePrefix(createdAfter * 1000);
  const page = unwrap(
    await appQueue(context.env, app).listTasks(caller, { state: state as TaskState | null, limit, below, from }),
  );
  return jsonResponse(JSON.stringify(page), 200, context.reqId);
}
