/**
 * Verifying an app key where the request names another app: the key's own app object holds
 * its secret, so a forged key is 401 before any 403. Shared by submissions and the control API.
 */
import type { Permission } from "../auth/access-keys";
import { ADMIN, forbidden, type Caller, type Principal } from "../auth/authenticate";
import { GatewayError, unwrap } from "../http/errors";
import { appQueue } from "../app/stubs";

/** Who signed a request and what they signed (for a submission, the task's body). */
export interface CallerContext {
  env: Env;
  caller: Caller;
  body: Uint8Array;
}

/**
 * The caller to hand to `app`'s object, which verifies a key of its own and checks
 * `permission` inside the RPC the request makes anyway. A key of another app is verified
 * by its own app's object (so a forged key is 401, never 403) and then refused:
 * 403, or whatever `refusal` says (404 for task ids: no existence oracle).
 */
export async function callerFor(
  context: CallerContext,
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
export async function verifiedPrincipal({ caller, env, body }: CallerContext): Promise<Principal> {
  if (caller.kind === "admin") return ADMIN;
  return unwrap(await appQueue(env, caller.app).identify(caller, body));
}
