/**
 * Who is signed in. Keys come from the URL fragment (`#ak=…&sk=…`, never sent to the server;
 * `asyncgate console` prints such a URL) or the sign-in form, and live in sessionStorage only:
 * gone when the tab closes, never in localStorage.
 */
import { AsyncgateClient, AsyncgateError } from "../client/index";

const STORAGE_KEY = "asyncgate.keys";

export interface Keys {
  accessKey: string;
  secretKey: string;
  /** Set when the key may not manage (list or change) apps: the console shows this app, read-only. */
  readOnlyApp?: string;
}

/** Takes keys out of the fragment (and the fragment out of the address bar and history). */
export function keysFromFragment(): Keys | null {
  if (!/^#(.*&)?ak=/.test(location.hash)) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", `${location.pathname}#/apps`);
  const accessKey = params.get("ak");
  const secretKey = params.get("sk");
  return accessKey && secretKey ? { accessKey, secretKey } : null;
}

export function storedKeys(): Keys | null {
  try {
    const keys = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Keys | null;
    return keys && typeof keys.accessKey === "string" && typeof keys.secretKey === "string" ? keys : null;
  } catch {
    return null;
  }
}

export const storeKeys = (keys: Keys) => sessionStorage.setItem(STORAGE_KEY, JSON.stringify(keys));
export const forgetKeys = () => sessionStorage.removeItem(STORAGE_KEY);

/** A client for this gateway (the page's own origin is the control API). */
export const clientFor = (keys: Keys) => new AsyncgateClient({ endpoint: location.origin, ...keys, retries: 1 });

/** The app an app key (`<app>.<24 hex>`) belongs to; null for the admin's. */
export const appOfKey = (accessKey: string): string | null =>
  /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.[0-9a-f]{24}$/.exec(accessKey)?.[1] ?? null;

/** Whether `error` is a permission refused on one thing (403): the keys themselves are good. */
export const isForbidden = (error: unknown): error is AsyncgateError =>
  error instanceof AsyncgateError && error.status === 403;

/** Whether `error` says the keys themselves were refused (not a permission on one thing). */
export const isKeyRefused = (error: unknown): error is AsyncgateError =>
  error instanceof AsyncgateError && error.status === 401;

/** An error as one line for a person: the gateway's message and code. */
export function describe(error: unknown): string {
  if (error instanceof AsyncgateError) return `${error.message || "request failed"} (${error.status} ${error.code})`;
  return error instanceof Error ? error.message : String(error);
}
