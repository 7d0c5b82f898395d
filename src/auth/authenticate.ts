/**
 * Who sent a request. Every request carries a Qiniu access token; the gateway's admin
 * pair (wrangler secrets ADMIN_ACCESS_KEY / ADMIN_SECRET_KEY) may do everything.
 * Scoped per-app keys plug in through {@link KeyLookup}.
 */
import { GatewayError } from "../http/errors";
import { parseAuthorization, parseQiniuDate, verifySignature } from "./qiniu";
import { parseUrlToken, verifyUrlToken, type UrlToken } from "./url-token";

export type Permission = "submit" | "query" | "subscribe" | "manage";

export type Principal = { kind: "admin" } | { kind: "key"; app: string; accessKey: string; permissions: Permission[] };

export interface KeyRecord {
  secretKey: string;
  principal: Principal;
}

/** Finds the secret for an access key; null when the key is unknown. */
export type KeyLookup = (accessKey: string) => Promise<KeyRecord | null>;

/** How far `X-Qiniu-Date` may be from now: a captured request cannot be replayed later. */
export const REPLAY_WINDOW_MS = 15 * 60 * 1000;

export function adminKeys(env: { ADMIN_ACCESS_KEY?: string; ADMIN_SECRET_KEY?: string }): KeyLookup {
  return async (accessKey) => {
    if (!env.ADMIN_ACCESS_KEY || !env.ADMIN_SECRET_KEY || accessKey !== env.ADMIN_ACCESS_KEY) return null;
    return { secretKey: env.ADMIN_SECRET_KEY, principal: { kind: "admin" } };
  };
}

const unauthorized = (message: string, code = "unauthorized") => new GatewayError(401, code, message);

export async function authenticate(request: Request, body: Uint8Array, lookup: KeyLookup, nowMs: number): Promise<Principal> {
  const authorization = request.headers.get("authorization");
  const url = new URL(request.url);
  const host = request.headers.get("host") ?? url.host;
  if (authorization === null && request.method === "GET") {
    // Browsers cannot sign headers on a WebSocket upgrade: a signed, expiring URL serves instead.
    const urlToken = parseUrlToken(`${url.protocol}//${host}${url.pathname}${url.search}`);
    if (urlToken) return authenticateUrl(urlToken, lookup, nowMs);
  }
  const token = parseAuthorization(authorization);
  if (!token) throw unauthorized("missing or malformed Authorization: expected 'Qiniu <AccessKey>:<Sign>'");
  const key = await lookup(token.accessKey);
  const valid =
    key !== null &&
    (await verifySignature(
      {
        method: request.method,
        pathAndQuery: url.pathname + url.search,
        host,
        contentType: request.headers.get("content-type"),
        headers: request.headers,
        body,
      },
      key.secretKey,
      token.sign,
    ));
  if (!key || !valid) throw unauthorized("bad access key or signature", "bad_token");
  const date = request.headers.get("x-qiniu-date");
  if (date !== null) {
    const at = parseQiniuDate(date);
    if (at === null || Math.abs(nowMs - at) > REPLAY_WINDOW_MS) {
      throw unauthorized("X-Qiniu-Date is malformed or more than 15 minutes from now", "request_expired");
    }
  }
  return key.principal;
}

async function authenticateUrl(token: UrlToken, lookup: KeyLookup, nowMs: number): Promise<Principal> {
  const key = await lookup(token.accessKey);
  if (!key || !(await verifyUrlToken(token, key.secretKey))) throw unauthorized("bad access key or URL signature", "bad_token");
  if (token.deadline * 1000 < nowMs) throw unauthorized("the signed URL has expired", "request_expired");
  return key.principal;
}

/** Throws 403 unless `principal` may do `permission` on `app`. */
export function authorize(principal: Principal, permission: Permission, app: string | null): void {
  if (principal.kind === "admin") return;
  if (app !== null && principal.app === app && principal.permissions.includes(permission)) return;
  throw new GatewayError(403, "forbidden", `this key may not ${permission}${app ? ` on app ${app}` : ""}`);
}
