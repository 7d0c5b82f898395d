/** What every control-API handler receives besides the request, and how it checks the caller. */
import type { Permission } from "../auth/access-keys";
import { ADMIN, forbidden, type Caller, type Principal } from "../auth/authenticate";
import type { ConfigRules } from "../app/config";
import { GatewayError, unwrap } from "../http/errors";
import { appQueue } from "../shared/stubs";

export interface ControlContext {
  env: Env;
  reqId: string;
  /** Who signed the request; an app key is not verified yet (see {@link callerFor}). */
  caller: Caller;
  /** The request body, already read (it was signed). */
  body: Uint8Array;
  /** How configs and URLs in this request are checked. */
  rules: ConfigRules;
}

/**
 * The caller to hand to `app`'s object, which verifies a key of its own and checks
 * `permission` inside the RPC the request makes anyway. A key of another app is verified
 * by its own app's object (so a forged key is 401, never 403) and then refused:
 * 403, or whatever `refusal` says (404 for task ids: no existence oracle).
 */
export async function callerFor(
  context: ControlContext,
  app: string,
  permission: Permission,
  refusal: () => GatewayError = () => forbidden(permission, app),
): Promise<Caller> {
  const { caller } = context;
  if (caller.kind === "admin" || caller.app === app) return caller;
  await verifiedPrincipal(context);
  throw refusal();
}

/** The caller, verified: one RPC to the key's app object for an app key. */
export async function verifiedPrincipal({ caller, env, body }: ControlContext): Promise<Principal> {
  if (caller.kind === "admin") return ADMIN;
  return unwrap(await appQueue(env, caller.app).identify(caller, body));
}

/** A single query parameter; itty-router gives arrays for repeated ones. */
export function queryParam(query: Record<string, string | string[] | undefined>, name: string): string | null {
  const value = query[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

/** An optional positive integer query parameter; 400 `invalid_<name>` when malformed or over `max`. */
export function positiveInteger(value: string | null, fallback: number, max: number, name: string): number {
  if (value === null || value === "") return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new GatewayError(400, `invalid_${name}`, `${name} must be an integer in [1, ${max}]`);
  }
  return Number(value);
}
