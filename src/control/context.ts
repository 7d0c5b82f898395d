/** What every control-API handler receives besides the request, and how it checks the caller. */
import type { Caller } from "../auth/authenticate";
import type { ConfigRules } from "../config/rules";
import { GatewayError } from "../http/errors";

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

/** An optional unix-seconds query parameter (a time filter); 400 `invalid_<name>` when malformed. */
export function unixSeconds(value: string | null, name: string): number | null {
  if (value === null || value === "") return null;
  if (!/^\d{1,11}$/.test(value)) throw new GatewayError(400, `invalid_${name}`, `${name} must be unix seconds`);
  return Number(value);
}
