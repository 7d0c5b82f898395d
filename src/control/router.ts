/**
 * The control API on the control host (itty-router). Every request is signed;
 * the body is read (bounded) and verified before any route runs.
 */
import { IttyRouter, type IRequest } from "itty-router";
import { createApp, deleteApp, getApp, listApps, patchApp } from "./apps";
import type { ControlContext } from "./context";
import { isWebSocketUpgrade, subscribe } from "./subscribe";
import { cancelTask, getTask, listTasks, retryTask } from "./tasks";
import { adminKeys, authenticate } from "../auth/authenticate";
import { readBody } from "../http/body";
import { GatewayError } from "../http/errors";

/** Control requests carry small JSON documents. */
const MAX_CONTROL_BODY_BYTES = 256 * 1024;

const methodNotAllowed = (request: IRequest): never => {
  throw new GatewayError(405, "method_not_allowed", `${request.method} is not allowed on ${new URL(request.url).pathname}`);
};

const router = IttyRouter<IRequest, [ControlContext], Response>()
  .post("/v1/apps", createApp)
  .get("/v1/apps", listApps)
  .all("/v1/apps", methodNotAllowed)
  .get("/v1/apps/:name", getApp)
  .patch("/v1/apps/:name", patchApp)
  .delete("/v1/apps/:name", deleteApp)
  .all("/v1/apps/:name", methodNotAllowed)
  .get("/v1/tasks", (request, context) => (isWebSocketUpgrade(request) ? subscribe(request, context) : listTasks(request, context)))
  .all("/v1/tasks", methodNotAllowed)
  .get("/v1/task/:id", getTask)
  .delete("/v1/task/:id", cancelTask)
  .all("/v1/task/:id", methodNotAllowed)
  .post("/v1/task/:id/retry", retryTask)
  .all("/v1/task/:id/retry", methodNotAllowed);

export async function handleControl(request: Request, env: Env, reqId: string): Promise<Response> {
  const body = await readBody(request, MAX_CONTROL_BODY_BYTES);
  const principal = await authenticate(request, body, adminKeys(env), Date.now());
  const response = await router.fetch(request, { env, reqId, principal, body });
  if (!response) throw new GatewayError(404, "not_found", `no route: ${request.method} ${new URL(request.url).pathname}`);
  return response;
}
