/**
 * The one error type of the gateway. Thrown wherever a problem is found,
 * rendered exactly once, at the fetch boundary, as SPEC §8 JSON.
 */
import { log } from "../shared/log";
export class GatewayError extends Error {
  override name = "GatewayError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The serialisable form of a {@link GatewayError}, for crossing RPC. */
export interface ErrorInfo {
  status: number;
  code: string;
  message: string;
}

/**
 * What a Durable Object RPC method answers when the caller's input is at fault.
 * Errors thrown across RPC lose their class, so the object returns them as
 * values and the Worker rethrows them as {@link GatewayError}.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const fail = (status: number, code: string, message: string): Outcome<never> => ({
  ok: false,
  error: { status, code, message },
});

/** Unwraps an {@link Outcome}, throwing its error as a {@link GatewayError}. */
export function unwrap<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  const { status, code, message } = outcome.error;
  throw new GatewayError(status, code, message);
}

/**
 * Runs `check` (validation that throws {@link GatewayError}) and answers its value or its error
 * as an {@link Outcome}: the inverse of {@link unwrap}, for Durable Object RPC methods.
 */
export function outcomeOf<T>(check: () => T): Outcome<T> {
  try {
    return ok(check());
  } catch (error) {
    if (error instanceof GatewayError) return fail(error.status, error.code, error.message);
    throw error;
  }
}

export const badRequest = (code: string, message: string) => new GatewayError(400, code, message);
export const notFound = (code: string, message: string) => new GatewayError(404, code, message);

export function errorBody(error: { code: string; message: string }, reqId: string): string {
  return JSON.stringify({ error: error.message, code: error.code, req_id: reqId });
}

/** An error as answered: its status, code and message, and how long to wait before retrying. */
export interface ErrorAnswer extends ErrorInfo {
  retryAfterSeconds: number | null;
}

/**
 * What anything thrown is answered with; unexpected errors are logged and become a bare 500.
 * Each dialect renders it: SPEC §8 JSON ({@link renderError}), or a front door's own shape.
 */
export function describeError(error: unknown, reqId: string, context: string): ErrorAnswer {
  if (error instanceof GatewayError)
    return { status: error.status, code: error.code, message: error.message, retryAfterSeconds: null };
  // Durable Object errors say whether trying again can help (overloaded, reset, moved):
  // that is the platform being busy, not a fault of ours, and the client should retry.
  const flags = error as { retryable?: unknown; overloaded?: unknown } | null;
  if (flags && (flags.retryable === true || flags.overloaded === true)) {
    log("warn", "transient_error", { where: context, req_id: reqId }, error);
    return { status: 503, code: "unavailable", message: "the gateway is busy; retry shortly", retryAfterSeconds: 1 };
  }
  log("error", "unexpected_error", { where: context, req_id: reqId }, error);
  return { status: 500, code: "internal_error", message: "internal error", retryAfterSeconds: null };
}

/** Turns anything thrown into a SPEC §8 response. */
export function renderError(error: unknown, reqId: string, context: string): Response {
  const answer = describeError(error, reqId, context);
  const headers: Record<string, string> =
    answer.retryAfterSeconds === null ? {} : { "Retry-After": String(answer.retryAfterSeconds) };
  return jsonResponse(errorBody(answer, reqId), answer.status, reqId, headers);
}

export function jsonResponse(body: string, status: number, reqId: string, headers: HeadersInit = {}): Response {
  const response = new Response(body, { status, headers });
  response.headers.set("Content-Type", "application/json");
  response.headers.set("X-Reqid", reqId);
  return response;
}
