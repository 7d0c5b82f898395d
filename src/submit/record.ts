/**
 * Recording a submitted request: which headers are kept. Pure functions over values; the
 * header map itself (canonical names, repeated values) is http/headers.ts.
 */
import { HOP_BY_HOP, headerMap } from "../http/headers";
import type { HeaderMap } from "../shared/types";

/** Hop-by-hop headers, the gateway's own credentials and headers the platform owns. */
const NOT_RECORDED = new Set([
  ...HOP_BY_HOP,
  "authorization",
  // Signed with Authorization, checked by the gateway: part of the credential, not the request.
  "x-qiniu-date",
  "host",
  "content-length",
  "cf-connecting-ip",
  "cf-ipcountry",
  "cf-ray",
  "cf-visitor",
  "cf-worker",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-real-ip",
]);

/**
 * The task-metadata namespaces (SPEC §5, and Cloud Tasks' and App Engine's own names): the
 * gateway sets these on delivery, so a client
 * must not be able to supply them. Control headers (`Asyncgate-Delay`, …, and their signed
 * `X-Qiniu-Asyncgate-…` forms) share the prefix and are consumed by the gateway, never forwarded.
 */
const RESERVED_PREFIXES = ["asyncgate-", "x-qiniu-asyncgate-", "x-cloudtasks-", "x-appengine-"];

export function isRecordedHeader(lowerName: string): boolean {
  if (NOT_RECORDED.has(lowerName)) return false;
  return !RESERVED_PREFIXES.some((prefix) => lowerName.startsWith(prefix));
}

/** The request's headers as recorded for its task (see {@link isRecordedHeader}). */
export function recordHeaders(headers: Headers): HeaderMap {
  return headerMap(headers, isRecordedHeader);
}
