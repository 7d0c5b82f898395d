/**
 * Who may do what on this app: the admin was verified by the Worker; a key of this app is
 * verified here, with its secret (app-keys.ts), and must hold the permission asked. Unknown
 * keys (and every key of an app that does not exist) are 401, so a forged key learns nothing.
 */
import type { Permission } from "../auth/access-keys";
import { ADMIN, type Caller, type Principal } from "../auth/authenticate";
import type { AppConfig } from "../config/app-config";
import { fail, ok, type Outcome } from "../http/errors";
import type { AppKeys } from "./app-keys";

export const APP_NOT_FOUND = () => fail(404, "app_not_found", "no such app");
export const TASK_NOT_FOUND = () => fail(404, "task_not_found", "no such task");
/** A submission meant for a shard the object is not (yet): the Worker asks the app's own object. */
export const SHARD_NOT_OPEN = () => fail(409, "shard_not_open", "this shard is not open: ask the app's object");

export class Access {
  readonly #keys: () => AppKeys;
  readonly #config: () => AppConfig | null;

  constructor(keys: () => AppKeys, config: () => AppConfig | null) {
    this.#keys = keys;
    this.#config = config;
  }

  /** The caller, verified; `permission` null asks only who it is. A submission's key signed its body. */
  async authorize(
    caller: Caller,
    permission: Permission | null,
    taskBody: Uint8Array | null = null,
  ): Promise<Outcome<Principal>> {
    if (caller.kind === "admin") return ok(ADMIN);
    const config = this.#config();
    const body = caller.body ?? taskBody ?? new Uint8Array(0);
    const principal =
      config && caller.app === config.name ? await this.#keys().verify(config.name, caller.proof, body) : null;
    if (!principal) return fail(401, "bad_token", "bad access key or signature");
    if (permission !== null && !principal.permissions.includes(permission)) {
      return fail(403, "forbidden", `this key may not ${permission} on app ${principal.app}`);
    }
    return ok(principal);
  }

  /**
   * Who submits: the admin, or a key with `submit`, and with `query` too when the task sets a
   * callback (the callback receives the task's record, the origin's response included).
   */
  async submitter(caller: Caller, taskBody: Uint8Array, wantsCallback: boolean): Promise<Outcome<Principal>> {
    const auth = await this.authorize(caller, "submit", taskBody);
    if (!auth.ok || !wantsCallback || auth.value.kind === "admin" || auth.value.permissions.includes("query"))
      return auth;
    return fail(403, "forbidden", `this key may not set a callback on app ${auth.value.app}: that needs query`);
  }

  /** The one guard of the control methods: the caller may do `permission`, and the object is an app (its config). */
  async guard(caller: Caller, permission: Permission, missing = APP_NOT_FOUND): Promise<Outcome<AppConfig>> {
    const auth = await this.authorize(caller, permission);
    if (!auth.ok) return auth;
    const config = this.#config();
    return config ? ok(config) : missing();
  }
}
