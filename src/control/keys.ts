/** An app's access keys (SPEC §7): create (the secret shown once), list, revoke. */
import type { IRequest } from "itty-router";
import { appName } from "./apps";
import { type ControlContext } from "./context";
import { callerFor } from "./callers";
import { parsePermissions } from "../auth/access-keys";
import { parseJson } from "../http/body";
import { badRequest, jsonResponse, notFound, unwrap } from "../http/errors";
import { appQueue } from "../app/stubs";

export async function createKey(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const input = parseJson(context.body);
  const permissions = parsePermissions(
    typeof input === "object" && input !== null ? (input as Record<string, unknown>)["permissions"] : undefined,
  );
  if (!permissions) {
    throw badRequest(
      "invalid_permissions",
      'permissions must be a non-empty list of "submit", "query", "subscribe", "manage"',
    );
  }
  const created = unwrap(await appQueue(context.env, name).createKey(caller, permissions));
  return jsonResponse(JSON.stringify(created), 201, context.reqId);
}

export async function listKeys(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const caller = await callerFor(context, name, "manage");
  const keys = unwrap(await appQueue(context.env, name).listKeys(caller));
  return jsonResponse(JSON.stringify({ keys }), 200, context.reqId);
}

export async function revokeKey(request: IRequest, context: ControlContext): Promise<Response> {
  const name = appName(request);
  const accessKey = request.params["accessKey"] ?? "";
  if (accessKey.length > 128) throw notFound("key_not_found", "no such key");
  const caller = await callerFor(context, name, "manage");
  const revoked = unwrap(await appQueue(context.env, name).revokeKey(caller, accessKey));
  return jsonResponse(JSON.stringify(revoked), 200, context.reqId);
}
