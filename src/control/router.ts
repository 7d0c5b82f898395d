/**
 * The control API on the control host (itty-router). Every request is signed; the body
 * is read (bounded) and the credentials read before any route runs. The admin pair is
 * verified here; an app key by its app's object (see auth/callers.ts).
 */
import { IttyRouter, type IRequest } from "itty-router";
import {
  appStats,
  createApp,
  deleteApp,
  getApp,
  listApps,
  patchApp,
  purgeApp,
  redriveApp,
  rotateSigningSecret,
} from "./apps";
import type { ControlContext } from "./context";
import { createKey, listKeys, revokeKey } from "./keys";
import { isWebSocketUpgrade, subscribe } from "./subscribe";
import { getMeters } from "./meters";
import { OPENAPI } from "./openapi";
import { cancelTask, getTask, listTasks, retryTask } from "./tasks";
import { identifyCaller } from "../auth/authenticate";
import { readProof } from "../auth/credentials";
import { readBody } from "../http/body";
import { configRules } from "../config/rules";
import { GatewayError, jsonResponse } from "../http/errors";

/** Control requests carry small JSON documents. */
const MAX_CONTROL_BODY_BYTES = 256 * 1024;

const methodNotAllowed = (request: IRequest): never => {
  throw new GatewayError(
    405,
    "method_not_allowed",
    `${request.method} is not allowed on ${new URL(request.url).pathname}`,
  );
};

const router = IttyRouter<IRequest, [ControlContext], Response>()
  .post("/v1/apps", createApp)
  .get("/v1/apps", listApps)
  .all("/v1/apps", methodNotAllowed)
  .get("/v1/apps/:name", getApp)
  .patch("/v1/apps/:name", patchApp)
  .delete("/v1/apps/:name", deleteApp)
  .all("/v1/apps/:name", methodNotAllowed)
  .get("/v1/apps/:name/stats", appStats)
  .all("/v1/apps/:name/stats", methodNotAllowed)
  .post("/v1/apps/:name/redrive", redriveApp)
  .all("/v1/apps/:name/redrive", methodNotAllowed)
  .post("/v1/apps/:name/purge", purgeApp)
  .all("/v1/apps/:name/purge", methodNotAllowed)
  .post("/v1/apps/:name/signing-secret/rotate", rotateSigningSecret)
  .all("/v1/apps/:name/signing-secret/rotate", methodNotAllowed)
  .post("/v1/apps/:name/keys", createKey)
  .get("/v1/apps/:name/keys", listKeys)
  .all("/v1/apps/:name/keys", methodNotAllowed)
  .delete("/v1/apps/:name/keys/:accessKey", revokeKey)
  .all("/v1/apps/:name/keys/:accessKey", methodNotAllowed)
  .get("/v1/meters", getMeters)
  .all("/v1/meters", methodNotAllowed)
  .get("/v1/tasks", (request, context) =>
    isWebSocketUpgrade(request) ? subscribe(request, context) : listTasks(request, context),
  )
  .all("/v1/tasks", methodNotAllowed)
  .get("/v1/task/:id", getTask)
  .delete("/v1/task/:id", cancelTask)
  .all("/v1/task/:id", methodNotAllowed)
  .post("/v1/task/:id/retry", retryTask)
  .all("/v1/task/:id/retry", methodNotAllowed);

/** Only the live feed's upgrade may carry a signed URL instead of an Authorization header. */
const isFeedUpgrade = (request: Request) =>
  request.method === "GET" && new URL(request.url).pathname === "/v1/tasks" && isWebSocketUpgrade(request);

/** The OpenAPI document, serialised once per isolate. */
let openApiJson: string | null = null;

export async function handleControl(request: Request, env: Env, reqId: string): Promise<Response> {
  const { pathname } = new URL(request.url);
  const reading = request.method === "GET" || request.method === "HEAD";
  // Unauthenticated: where things are (a browser at the root goes to the console)…
  if (pathname === "/" && reading) {
    if ((request.headers.get("accept") ?? "").includes("text/html")) {
      return new Response(null, { status: 302, headers: { Location: "/console", "X-Reqid": reqId } });
    }
    const links = JSON.stringify({ name: "asyncgate", console: "/console", openapi: "/openapi.json" });
    return jsonResponse(request.method === "HEAD" ? "" : links, 200, reqId);
  }
  // …and the API's own description.
  if (pathname === "/openapi.json" && reading) {
    openApiJson ??= JSON.stringify(OPENAPI);
    return jsonResponse(request.method === "HEAD" ? "" : openApiJson, 200, reqId, {
      "Cache-Control": "public, max-age=300",
    });
  }
  const body = await readBody(request, MAX_CONTROL_BODY_BYTES);
  const now = Date.now();
  const proof = readProof(request, {
    urlTokenAllowed: isFeedUpgrade(request),
    requireSignedDate: env.REQUIRE_SIGNED_DATE === "true",
    nowMs: now,
  });
  const caller = await identifyCaller(proof, body, env);
  const host = request.headers.get("host") ?? new URL(request.url).host;
  const response = await router.fetch(request, { env, reqId, caller, body, rules: configRules(env, host) });
  if (!response)
    throw new GatewayError(404, "not_found", `no route: ${request.method} ${new URL(request.url).pathname}`);
  return response;
}
