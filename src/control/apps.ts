/** App entries (SPEC §7): create, read, list, update, delete. */
import type { IRequest } from "itty-router";
import { positiveInteger, queryParam, type ControlContext } from "./context";
import { createConfig, type AppConfig } from "../app/config";
import { authorize } from "../auth/authenticate";
import { parseJson } from "../http/body";
import { configRules } from "../http/context";
import { badRequest, jsonResponse, notFound, unwrap } from "../http/errors";
import { APP_NAME } from "../hosts";
import { randomHex } from "../shared/encoding";
import { appQueue, registry } from "../shared/stubs";

const view = (config: AppConfig, env: Env) => ({ ...config, host: `${config.name}${env.APP_HOST_SUFFIX}` });

function appName(request: IRequest): string {
  const name = request.params["name"] ?? "";
  if (!APP_NAME.test(name)) throw notFound("app_not_found", `no such app: ${name}`);
  return name;
}

export async function createApp(_request: IRequest, { env, reqId, principal, body }: ControlContext): Promise<Response> {
  authorize(principal, "manage", null);
  const config = createConfig(parseJson(body), configRules(env));
  const number = unwrap(await registry(env).register(config));
  const identity = { number, createdMs: Date.now(), signingSecret: randomHex(32) };
  const configured = await appQueue(env, config.name).configure(config, identity);
  if (!configured.ok) {
    await registry(env).remove(config.name);
    unwrap(configured);
  }
  // The signing secret is shown here, once; origins use it to verify Asyncgate-Signature.
  const created = { ...view(config, env), signing_secret: identity.signingSecret };
  return jsonResponse(JSON.stringify(created), 201, reqId);
}

export async function getApp(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const name = appName(request);
  authorize(principal, "manage", name);
  const found = await appQueue(env, name).getConfig();
  if (!found) throw notFound("app_not_found", `no such app: ${name}`);
  return jsonResponse(JSON.stringify({ ...view(found.config, env), stats: await appQueue(env, name).stats() }), 200, reqId);
}

export async function patchApp(request: IRequest, { env, reqId, principal, body }: ControlContext): Promise<Response> {
  const name = appName(request);
  authorize(principal, "manage", name);
  const config = unwrap(await appQueue(env, name).patchConfig(parseJson(body)));
  await registry(env).update(config);
  return jsonResponse(JSON.stringify(view(config, env)), 200, reqId);
}

export async function deleteApp(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  const name = appName(request);
  authorize(principal, "manage", name);
  const app = appQueue(env, name);
  if (!(await app.getConfig())) throw notFound("app_not_found", `no such app: ${name}`);
  await app.destroy();
  await registry(env).remove(name);
  return jsonResponse(JSON.stringify({ deleted: name }), 200, reqId);
}

/** Tencent's describe-queues filters: `ids`, `state`, `page`, `page_size` (≤ 100). */
export async function listApps(request: IRequest, { env, reqId, principal }: ControlContext): Promise<Response> {
  authorize(principal, "manage", null);
  const ids = queryParam(request.query, "ids");
  const names = ids ? ids.split(",").map((id) => id.trim()).filter(Boolean) : null;
  if (names && (names.length > 100 || names.some((name) => !APP_NAME.test(name)))) {
    throw badRequest("invalid_ids", "ids must be a comma-separated list of up to 100 app names");
  }
  const state = queryParam(request.query, "state");
  if (state !== null && state !== "Active" && state !== "Paused") throw badRequest("invalid_state", "state must be Active or Paused");
  const page = positiveInteger(queryParam(request.query, "page"), 1, 1_000_000, "page");
  const pageSize = positiveInteger(queryParam(request.query, "page_size"), 10, 100, "page_size");
  const result = await registry(env).list({ names, state, page, pageSize });
  const body = { total: result.total, page, page_size: pageSize, apps: result.apps.map((config) => view(config, env)) };
  return jsonResponse(JSON.stringify(body), 200, reqId);
}
