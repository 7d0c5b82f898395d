/**
 * Replaying a recorded request against the app's origin: one attempt, bounded by
 * its timeout, with the task-metadata headers of SPEC §5 (Cloud Tasks' set under
 * our namespace, or Cloud Tasks' or App Engine's own names when the app asks for them).
 */
import { signatureHeaders } from "./signature";
import { concatBytes } from "../shared/encoding";
import { headerMap, isEndToEndHeader, toHeaders } from "../http/headers";
import type { AttemptResult, Delivery } from "../shared/types";

/** The largest origin response body kept in the task record; the rest is cut off. */
export const MAX_RESPONSE_BYTES = 1_048_576;

const HEADER_NAMES = {
  asyncgate: {
    taskId: "Asyncgate-Task-Id",
    app: "Asyncgate-App",
    retryCount: "Asyncgate-Retry-Count",
    executionCount: "Asyncgate-Execution-Count",
    eta: "Asyncgate-ETA",
    previousResponse: "Asyncgate-Previous-Response",
    retryReason: "Asyncgate-Retry-Reason",
  },
  cloudtasks: {
    taskId: "X-CloudTasks-TaskName",
    app: "X-CloudTasks-QueueName",
    retryCount: "X-CloudTasks-TaskRetryCount",
    executionCount: "X-CloudTasks-TaskExecutionCount",
    eta: "X-CloudTasks-TaskETA",
    previousResponse: "X-CloudTasks-TaskPreviousResponse",
    retryReason: "X-CloudTasks-TaskRetryReason",
  },
  // Seed 003: what an App Engine task handler reads.
  appengine: {
    taskId: "X-AppEngine-TaskName",
    app: "X-AppEngine-QueueName",
    retryCount: "X-AppEngine-TaskRetryCount",
    executionCount: "X-AppEngine-TaskExecutionCount",
    eta: "X-AppEngine-TaskETA",
    previousResponse: "X-AppEngine-TaskPreviousResponse",
    retryReason: "X-AppEngine-TaskRetryReason",
  },
} as const;

/** Set when the submission asked for it (`Asyncgate-Fail-Fast: true`); Cloud Tasks' HTTP targets have no such header. */
const FAIL_FAST_HEADER = {
  asyncgate: "Asyncgate-Fail-Fast",
  cloudtasks: null,
  appengine: "X-AppEngine-FailFast",
} as const;

/** The metadata headers of one attempt. Pure. */
export function metadataHeaders(delivery: Delivery): [string, string][] {
  const names = HEADER_NAMES[delivery.taskHeaders];
  const headers: [string, string][] = [
    [names.taskId, delivery.taskId],
    [names.app, delivery.app],
    [names.retryCount, String(delivery.attempt - 1)],
    [names.executionCount, String(delivery.executions)],
    [names.eta, (delivery.etaMs / 1000).toFixed(3)],
  ];
  if (delivery.previousStatus !== null) headers.push([names.previousResponse, String(delivery.previousStatus)]);
  if (delivery.retryReason !== null) headers.push([names.retryReason, delivery.retryReason]);
  const failFast = FAIL_FAST_HEADER[delivery.taskHeaders];
  if (delivery.failFast && failFast) headers.push([failFast, "true"]);
  return headers;
}

/** `https://backend.example.com/api` + `/x` + `?a=1`. */
export function originUrl(origin: string, path: string, rawQuery: string): string {
  return origin + path + rawQuery;
}

/**
 * Runs one attempt. Never throws: every failure is an {@link AttemptResult}. `cut` aborts it
 * early too (the consumer's deadline), answered as a timeout: the caller, which knows it cut
 * the attempt, gives it back instead of reporting it.
 */
export async function replay(
  delivery: Delivery,
  nowMs: number = Date.now(),
  cut?: AbortSignal,
): Promise<AttemptResult> {
  const { request } = delivery;
  const headers = toHeaders(request.header);
  for (const [name, value] of metadataHeaders(delivery)) headers.set(name, value);
  for (const [name, value] of await signatureHeaders(delivery.signingSecrets, delivery.taskId, nowMs, request.body))
    headers.set(name, value);
  // The Fetch API forbids a body on GET and HEAD.
  const hasBody = request.method !== "GET" && request.method !== "HEAD" && request.body.byteLength > 0;
  try {
    const response = await fetch(originUrl(delivery.origin, request.path, request.raw_query), {
      method: request.method,
      headers,
      body: hasBody ? request.body : undefined,
      redirect: "manual",
      // No fetch has a timeout of its own: without this a hung origin holds the consumer.
      signal: cut
        ? AbortSignal.any([AbortSignal.timeout(delivery.timeoutMs), cut])
        : AbortSignal.timeout(delivery.timeoutMs),
    });
    const body = await readCapped(response, MAX_RESPONSE_BYTES);
    return { kind: "response", status: response.status, header: headerMap(response.headers, isEndToEndHeader), body };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    const detail = error instanceof Error ? error.message : String(error);
    if (name === "TimeoutError" || name === "AbortError") {
      return { kind: "error", error: "timeout", detail: `no response within ${delivery.timeoutMs} ms` };
    }
    return { kind: "error", error: "network error", detail };
  }
}

async function readCapped(response: Response, limit: number): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = limit - total;
    chunks.push(value.byteLength > room ? value.subarray(0, room) : value);
    total += Math.min(value.byteLength, room);
    if (total >= limit) {
      await reader.cancel();
      break;
    }
  }
  return concatBytes(...chunks);
}
