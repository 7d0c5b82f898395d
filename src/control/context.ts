/** What every control-API handler receives besides the request. */
import type { Principal } from "../auth/authenticate";
import { GatewayError } from "../http/errors";

export interface ControlContext {
  env: Env;
  reqId: string;
  principal: Principal;
  /** The request body, already read (it was signed). */
  body: Uint8Array;
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
