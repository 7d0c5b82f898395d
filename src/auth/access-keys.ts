/**
 * Per-app access keys (SPEC §7, Qiniu's "access permissions"). An access key names its
 * app — `<app>.<24 hex>` — so the Worker knows which app's object holds its secret
 * without asking anyone: verifying a key costs no call to a global object. Pure.
 */
import { APP_NAME } from "../http/hosts";
import { bytesToBase64, randomHex, toUrlSafeBase64 } from "../shared/encoding";

export const PERMISSIONS = ["submit", "query", "subscribe", "manage"] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Keys an app may hold at once. */
export const MAX_KEYS_PER_APP = 100;

const ACCESS_KEY = /^([a-z0-9-]{1,63})\.([0-9a-f]{24})$/;

export function newAccessKey(app: string): string {
  return `${app}.${randomHex(12)}`;
}

/** 40 URL-safe characters (30 random bytes), the shape of a Qiniu secret key. */
export function newSecretKey(): string {
  return toUrlSafeBase64(bytesToBase64(crypto.getRandomValues(new Uint8Array(30))));
}

/** The app an access key belongs to, or null when it is not an app key. */
export function appOfAccessKey(accessKey: string): string | null {
  const match = ACCESS_KEY.exec(accessKey);
  return match && APP_NAME.test(match[1]!) ? match[1]! : null;
}

/** Validates a `{"permissions": [...]}` list: non-empty, known names, no repeats; sorted. */
export function parsePermissions(value: unknown): Permission[] | null {
  if (!Array.isArray(value) || value.length === 0 || value.length > PERMISSIONS.length) return null;
  const known = new Set<string>(PERMISSIONS);
  if (value.some((item) => typeof item !== "string" || !known.has(item))) return null;
  if (new Set(value).size !== value.length) return null;
  return PERMISSIONS.filter((permission) => value.includes(permission));
}
