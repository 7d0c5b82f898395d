/** App entries (SPEC §7): create, read, list, update, delete. */
import type { IRequest } from "itty-router";
import { positiveInteger, queryParam, type ControlContext } from "./context";
import { callerFor, verifiedPrincipal, type CallerContext } from "./callers";
import { createConfig, type AppConfig, type AppState } from "../config/app-config";
import type { ConfigRules } from "../config/rules";
import { authorize } from "../auth/authenticate";
import { parseJson } from "../http/body";
import { badRequest, jsonResponse, notFound, unwrap } from "../http/errors";
import { newSigningSecret } from "../app/signing-secrets";
import { APP_NAME } from "../http/hosts";
import type { AppListPage, RegisteredApp } from "../registry/app-registry";
import { appQueue, registry } from "../app/stubs";

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
  if (!registered.ok && registered.error.status === 409 && !(await appQueue(env, config.name).registration())) {
    // The registry holds the name but no object is configured (an earlier create or delete
    // failed halfway): the name is free, take it.
    await registry(env).remove(config.name);
    registered = await registry(env).register(config);
  }
  const number = unwrap(registered);
  const identity = { number, createdMs: Date.now(), signingSecret: newSigningSecret() };
  let configured;
  try {
    configured = await appQueue(env, config.name).configure(config, identity);
  } catch (error) {
    await registry(env).remove(config.name, number); // never leave the name held by nothing
    throw error;
  }
  if (!configured.ok) {
    await yieldName(env, config.name, number);
    unwrap(configured);
  }
  // The signing secret is shown here, once (and by a rotation); origins verify deliveries with it.
  const created = { ...view(config, env), signing_secret: identity.signingSecret };
  return jsonResponse(JSON.stringify(created), 201, reqId);
}

/**
 * A create that lost the race for `name`'s object lets its `number` go. Another create won, perhaps
 * after this one took the name's registry entry away (the takeover above, while the winner was
 * still configuring): the winner is listed again, so its app and task ids never go missing.
 */
export async function yieldName(env: Env, name: string, number: number): Promise<void> {
  const winner = await appQueue(env, name).registration();
  if (winner) await registry(env).restore(winner.config, winner.number, number);
  else await registry(env).remove(name, number);
}

export async function getApp(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const { config, stats, delivery } = unwrap(await appQueue(context.env, name).describe(caller));
  return jsonResponse(JSON.stringify({ ...view(config, context.env), delivery, stats }), 200, context.reqId);
}

export async function patchApp(request: IRequest, context: ControlContext): Promise<Response> {
  const { config } = await updateApp(context, appName(request), parseJson(context.body));
  return jsonResponse(JSON.stringify(view(config, context.env)), 200, context.reqId);
}

/** Applies a partial config (PATCH semantics) to `name` for a caller with `manage`; the registry's copy follows. */
export async function updateApp(
  context: CallerContext & { rules: ConfigRules },
  name: string,
  patch: unknown,
): Promise<RegisteredApp> {
  const caller = await callerFor(context, name, "manage");
  const config = unwrap(await appQueue(context.env, name).patchConfig(caller, patch, context.rules));
  const listed = await registry(context.env).update(config);
  return listed ?? { config, createdMs: 0, updatedMs: 0 };
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

/** Which apps to list: Tencent's describe-queues filters. */
export interface AppFilter {
  names: string[] | null;
  state: AppState | null;
  page: number;
  pageSize: number;
}

/**
 * The apps a caller may see that match `filter`: the admin sees every app; an app key with
 * `manage` its own app only. Shared by `GET /v1/apps` and Tencent's `GET /docqueue`.
 */
export async function visibleApps(context: CallerContext, filter: AppFilter): Promise<AppListPage> {
  const principal = await verifiedPrincipal(context);
  let names = filter.names;
  if (principal.kind === "key") {
    authorize(principal, "manage", principal.app);
    names = (names ?? [principal.app]).filter((name) => name === principal.app);
  }
  return registry(context.env).list({ ...filter, names });
}

/** Parses `ids` (app names, comma-separated, at most 100); null when absent or empty. */
export function parseAppIds(ids: string | null, field: string): string[] | null {
  const names = ids
    ? ids
        .split(",")
        .map((id) => id.trim())
        .filter(Boolean)
    : null;
  if (names && (names.length > 100 || names.some((name) => !APP_NAME.test(name)))) {
    throw badRequest(`invalid_${field}`, `${field} must be a comma-separated list of up to 100 app names`);
  }
  return names && names.length > 0 ? names : null;
}

export function parseAppState(state: string | null): AppState | null {
  if (state !== null && state !== "" && state !== "Active" && state !== "Paused")
    throw badRequest("invalid_state", "state must be Active or Paused");
  return state === "" ? null : state;
}

/** `GET /v1/apps?ids=&state=&page=&page_size=` (page size ≤ 100). */
export async function listApps(request: IRequest, context: ControlContext): Promise<Response> {
  const { env, reqId } = context;
  const filter: AppFilter = {
    names: parseAppIds(queryParam(request.query, "ids"), "ids"),
    state: parseAppState(queryParam(request.query, "state")),
    page: positiveInteger(queryParam(request.query, "page"), 1, 1_000_000, "page"),
    pageSize: positiveInteger(queryParam(request.query, "page_size"), 10, 100, "page_size"),
  };
  const result = await visibleApps(context, filter);
  const body = {
    total: result.total,
    page: filter.page,
    page_size: filter.pageSize,
    apps: result.apps.map((app) => view(app.config, env)),
  };
  return jsonResponse(JSON.stringify(body), 200, reqId);
}

/** `POST /v1/apps/<name>/signing-secret/rotate` → `{signing_secret, previous_valid_until}`: the new secret, shown once. */
export async function rotateSigningSecret(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const rotated = unwrap(await appQueue(context.env, name).rotateSigningSecret(caller));
  return jsonResponse(JSON.stringify(rotated), 200, context.reqId);
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
