/**
 * Per-app access keys (SPEC §7, Qiniu's "access permissions"). An access key names its
 * app — `<app>.<24 hex>` — so the Worker knows which app's object holds its secret
 * without asking anyone: verifying a key costs no call to a global object.
 *
 * The key authenticates itself: its 24 hex are a 12-hex random id and a 12-hex MAC of the app
 * name and that id under the gateway's secret (KEY_ENCRYPTION_SECRET, or the admin secret).
 * The Worker checks the MAC before any call to an object, so a forged or made-up key (or one
 * naming an app that never had it) is refused without waking, or creating, any object.
 */
import { APP_NAME } from "../http/hosts";
import { bytesToBase64, bytesToHex, randomHex, timingSafeEqual, toUrlSafeBase64 } from "../shared/encoding";
import { hmac } from "../shared/hmac";

export const PERMISSIONS = ["submit", "query", "subscribe", "manage"] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Keys an app may hold at once. */
export const MAX_KEYS_PER_APP = 100;

const ACCESS_KEY = /^([a-z0-9-]{1,63})\.([0-9a-f]{24})$/;

const encoder = new TextEncoder();

/** The MAC part of a key: 12 hex of HMAC-SHA256(gateway secret, a label, the app and the id). */
async function keyMac(master: string, app: string, id: string): Promise<string> {
  const mac = await hmac("SHA-256", master, encoder.encode(`asyncgate access key v1\n${app}.${id}`));
  return bytesToHex(mac.subarray(0, 6));
}

/** A new access key of `app`, MAC'd under the gateway's secret `master`. */
export async function newAccessKey(app: string, master: string): Promise<string> {
  const id = randomHex(6);
  return `${app}.${id}${await keyMac(master, app, id)}`;
}

/** Whether `accessKey` is an app key this gateway made (its MAC holds); false for anything else. */
export async function isGenuineAccessKey(accessKey: string, master: string | null): Promise<boolean> {
  const match = ACCESS_KEY.exec(accessKey);
  if (!match || master === null) return false;
  const [app, hex] = [match[1]!, match[2]!];
  const expected = await keyMac(master, app, hex.slice(0, 12));
  return timingSafeEqual(expected, hex.slice(12));
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
