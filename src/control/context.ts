/** What every control-API handler receives besides the request. */
import type { Principal } from "../auth/authenticate";

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
