/** App entries (SPEC §7): create, read, list, update, delete. */
import type { IRequest } from "itty-router";
import { positiveInteger, queryParam, type ControlContext } from "./context";
import { callerFor, verifiedPrincipal } from "../auth/callers";
import { createConfig, type AppConfig } from "../app/config";
import { authorize } from "../auth/authenticate";
import { parseJson } from "../http/body";
import { badRequest, jsonResponse, notFound, unwrap } from "../http/errors";
import { APP_NAME } from "../hosts";
import { randomHex } from "../shared/encoding";
import { appQueue, registry } from "../shared/stubs";

const view = (config: AppConfig, env: Env) => ({ ...config, host: `${config.name}${env.APP_HOST_SUFFIX}` });

export function appName(request: IRequest): string {
  const name = request.params["name"] ?? "";
  if (!APP_NAME.test(name)) throw notFound("app_not_found", `no such app: ${name}`);
  return name;
}

/** Only the admin pair creates apps: there is no app yet whose key could. */
export async function createApp(_request: IRequest, context: ControlContext): Promise<Response> {
  const { env, reqId, body, rules } = context;
  authorize(await verifiedPrincipal(context), "manage", null);
  const config = createConfig(parseJson(body), rules);
  let registered = await registry(env).register(config);
  if (!registered.ok && registered.error.status === 409 && !(await appQueue(env, config.name).exists())) {
    // The registry holds the name but no object is configured (an earlier create or delete
    // failed halfway): the name is free, take it.
    await registry(env).remove(config.name);
    registered = await registry(env).register(config);
  }
  const number = unwrap(registered);
  const identity = { number, createdMs: Date.now(), signingSecret: randomHex(32) };
  let configured;
  try {
    configured = await appQueue(env, config.name).configure(config, identity);
  } catch (error) {
    await registry(env).remove(config.name, number); // never leave the name held by nothing
    throw error;
  }
  if (!configured.ok) {
    await registry(env).remove(config.name, number);
    unwrap(configured);
  }
  // The signing secret is shown here, once; origins use it to verify Asyncgate-Signature.
  const created = { ...view(config, env), signing_secret: identity.signingSecret };
  return jsonResponse(JSON.stringify(created), 201, reqId);
}

export async function getApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const { config, stats, delivery } = unwrap(await appQueue(context.env, name).describe(caller));
  return jsonResponse(JSON.stringify({ ...view(config, context.env), delivery, stats }), 200, context.reqId);
}

export async function patchApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const config = unwrap(await appQueue(context.env, name).patchConfig(caller, parseJson(context.body), context.rules));
  await registry(context.env).update(config);
  return jsonResponse(JSON.stringify(view(config, context.env)), 200, context.reqId);
}

export async function deleteApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const destroyed = await appQueue(context.env, name).destroy(caller);
  // Also when the object is no app (a create failed halfway): the registry lets the name go.
  if (destroyed.ok || destroyed.error.code === "app_not_found") await registry(context.env).remove(name);
  unwrap(destroyed);
  return jsonResponse(JSON.stringify({ deleted: name }), 200, context.reqId);
}

/**
 * Tencent's describe-queues filters: `ids`, `state`, `page`, `page_size` (≤ 100). The admin
 * sees every app; an app key with `manage` sees its own app only.
 */
export async function listApps(request: IRequest, context: ControlContext): Promise<Response> {
  const { env, reqId } = context;
  const ids = queryParam(request.query, "ids");
  let names = ids ? ids.split(",").map((id) => id.trim()).filter(Boolean) : null;
  if (names && (names.length > 100 || names.some((name) => !APP_NAME.test(name)))) {
    throw badRequest("invalid_ids", "ids must be a comma-separated list of up to 100 app names");
  }
  const state = queryParam(request.query, "state");
  if (state !== null && state !== "Active" && state !== "Paused") throw badRequest("invalid_state", "state must be Active or Paused");
  const page = positiveInteger(queryParam(request.query, "page"), 1, 1_000_000, "page");
  const pageSize = positiveInteger(queryParam(request.query, "page_size"), 10, 100, "page_size");
  const principal = await verifiedPrincipal(context);
  if (principal.kind === "key") {
    authorize(principal, "manage", principal.app);
    names = (names ?? [principal.app]).filter((name) => name === principal.app);
  }
  const result = await registry(env).list({ names, state, page, pageSize });
  const body = { total: result.total, page, page_size: pageSize, apps: result.apps.map((config) => view(config, env)) };
  return jsonResponse(JSON.stringify(body), 200, reqId);
}

/** `POST /v1/apps/<name>/redrive` `{state: 11, since?, until?, status_code?, dry_run?}` → `{matched, retried, remaining}`. */
export async function redriveApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const result = unwrap(await appQueue(context.env, name).redrive(caller, parseJson(context.body)));
  return jsonResponse(JSON.stringify(result), 200, context.reqId);
}

/** `POST /v1/apps/<name>/purge` `{state: 0}` → `{deleted, remaining}`. */
export async function purgeApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const result = unwrap(await appQueue(context.env, name).purge(caller, parseJson(context.body)));
  return jsonResponse(JSON.stringify(result), 200, context.reqId);
}

/** `GET /v1/apps/<name>/stats`: counts, age of the oldest waiting task, recent attempts, latency percentiles, limits. */
export async function appStats(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  return jsonResponse(JSON.stringify(unwrap(await appQueue(context.env, name).stats(caller))), 200, context.reqId);
}
