/** Task records (SPEC §4): read, list, cancel, retry. */
import type { IRequest } from "itty-router";
import { positiveInteger, queryParam, type ControlContext } from "./context";
import { authorize } from "../auth/authenticate";
import { badRequest, jsonResponse, notFound, unwrap } from "../http/errors";
import { APP_NAME } from "../hosts";
import { appNameOf, appQueue } from "../shared/stubs";
import { appNumberOf } from "../shared/task-id";
import type { TaskState } from "../shared/types";

const noSuchTask = (id: string) => notFound("task_not_found", `no such task: ${id}`);

/** The app a task id routes to, from the number inside the id. */
async function taskApp(request: IRequest, env: Env): Promise<{ id: string; app: string }> {
  const id = request.params["id"] ?? "";
  const number = appNumberOf(id);
  const app = number === null ? null : await appNameOf(env, number);
  if (!app) throw noSuchTask(id);
  return { id, app };
}

export async function getTask(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const { id, app } = await taskApp(request, env);
  authorize(principal, "query", app);
  const record = await appQueue(env, app).getTask(id);
  if (!record) throw noSuchTask(id);
  return jsonResponse(JSON.stringify(record), 200, reqId);
}

export async function cancelTask(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const { id, app } = await taskApp(request, env);
  authorize(principal, "manage", app);
  return jsonResponse(JSON.stringify(unwrap(await appQueue(env, app).cancel(id))), 200, reqId);
}

export async function retryTask(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const { id, app } = await taskApp(request, env);
  authorize(principal, "manage", app);
  return jsonResponse(JSON.stringify(unwrap(await appQueue(env, app).retry(id))), 200, reqId);
}

const STATES = new Set([0, 1, 10, 11]);

export async function listTasks(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const app = queryParam(request.query, "app");
  if (!app || !APP_NAME.test(app)) throw badRequest("invalid_app", "app is required and must be an app name");
  authorize(principal, "query", app);
  const stateText = queryParam(request.query, "state");
  const state = stateText === null || stateText === "" ? null : Number(stateText);
  if (state !== null && !STATES.has(state)) throw badRequest("invalid_state", "state must be 0, 1, 10 or 11");
  const limit = positiveInteger(queryParam(request.query, "limit"), 20, 100, "limit");
  const cursor = queryParam(request.query, "cursor");
  if (cursor !== null && !/^[0-9a-f]{32}$/.test(cursor)) throw badRequest("invalid_cursor", "cursor must be a task id");
  const page = unwrap(await appQueue(env, app).listTasks(state as TaskState | null, limit, cursor));
  return jsonResponse(JSON.stringify(page), 200, reqId);
}
