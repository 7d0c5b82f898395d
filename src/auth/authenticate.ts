/**
 * Who sent a request, and what they may do. The gateway's admin pair (wrangler secrets
 * ADMIN_ACCESS_KEY / ADMIN_SECRET_KEY) may do everything and is verified in the Worker.
 * An app key (`<app>.<hex>`) is checked here to be one the gateway made (its MAC, see
 * access-keys.ts), then verified by its app's object, which holds its secret: when the
 * request is for that same app, inside the one RPC the request makes anyway. Nothing that
 * fails here reaches an object.
 */
import { appOfAccessKey, isGenuineAccessKey, type Permission } from "./access-keys";
import { masterSecret } from "./key-vault";
import { unauthorized, verifyProof, type Proof } from "./credentials";
import { GatewayError } from "../http/errors";

export type { Permission } from "./access-keys";

export interface KeyPrincipal {
  kind: "key";
  app: string;
  accessKey: string;
  permissions: Permission[];
}

export type Principal = { kind: "admin" } | KeyPrincipal;

/**
 * Who a request says it comes from, as handed to an app's object: the admin (already
 * verified) or an app key whose proof the object named by `app` verifies.
 */
export type Caller =
  | { kind: "admin" }
  | {
      kind: "key";
      app: string;
      proof: Proof;
      /** The signed body; null on a submission, whose body is the task's recorded body. */
      body: Uint8Array | null;
    };

export const ADMIN: Caller & Principal = { kind: "admin" };

/** What identifying a caller reads of the Worker's env. */
export interface CallerEnv {
  ADMIN_ACCESS_KEY?: string;
  ADMIN_SECRET_KEY?: string;
  KEY_ENCRYPTION_SECRET?: string;
  /** "true": keys made before keys carried a MAC (2026-12-03) still reach their app's object. */
  LEGACY_ACCESS_KEYS?: string;
}

/** Verifies an admin proof here; for an app key, names the app whose object will verify it. */
export async function identifyCaller(
  proof: Proof,
  body: Uint8Array,
  env: CallerEnv,
  bodyIsTask = false,
): Promise<Caller> {
  if (env.ADMIN_ACCESS_KEY && env.ADMIN_SECRET_KEY && proof.accessKey === env.ADMIN_ACCESS_KEY) {
    if (!(await verifyProof(proof, env.ADMIN_SECRET_KEY, body)))
      throw unauthorized("bad access key or signature", "bad_token");
    return ADMIN;
  }
  const app = appOfAccessKey(proof.accessKey);
  if (app === null) throw unauthorized("bad access key or signature", "bad_token");
  const genuine = await isGenuineAccessKey(proof.accessKey, masterSecret(env));
  if (!genuine && env.LEGACY_ACCESS_KEYS !== "true") throw unauthorized("bad access key or signature", "bad_token");
  return { kind: "key", app, proof, body: bodyIsTask ? null : body };
}

export function permits(principal: Principal, permission: Permission, app: string | null): boolean {
  return (
    principal.kind === "admin" || (app !== null && principal.app === app && principal.permissions.includes(permission))
  );
}

export const forbidden = (permission: Permission, app: string | null) =>
  new GatewayError(403, "forbidden", `this key may not ${permission}${app ? ` on app ${app}` : ""}`);

/** Throws 403 unless `principal` may do `permission` on `app`. */
export function authorize(principal: Principal, permission: Permission, app: string | null): void {
  if (!permits(principal, permission, app)) throw forbidden(permission, app);
}
