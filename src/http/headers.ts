/**
 * HTTP header maps shared by recording (submit/), signing (auth/) and replay (delivery/):
 * canonical names, multi-value maps, and back to `Headers`. Pure functions over values.
 */
import type { HeaderMap } from "../shared/types";

/** Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, never a message. */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** `content-type` → `Content-Type`, as Go's textproto.CanonicalMIMEHeaderKey does. */
export function canonicalHeaderName(name: string): string {
  return name
    .toLowerCase()
    .split("-")
    .map((part) => (part ? part[0]!.toUpperCase() + part.slice(1) : part))
    .join("-");
}

/** The values of header `name` (any case) in a header map; undefined when it has none. */
export function headerValues(map: HeaderMap, name: string): string[] | undefined {
  const lowerName = name.toLowerCase();
  return Object.entries(map).find(([key]) => key.toLowerCase() === lowerName)?.[1];
}

/** Which origin response headers are kept in the task record. */
export const isEndToEndHeader = (lowerName: string): boolean => !HOP_BY_HOP.has(lowerName);

/** Headers whose values are not comma-separated lists (dates, agents): never split. */
const SINGLETON_HEADERS = new Set([
  "content-type",
  "cookie",
  "date",
  "expires",
  "if-modified-since",
  "if-unmodified-since",
  "last-modified",
  "retry-after",
  "set-cookie",
  "user-agent",
]);

/**
 * Header map of a request, canonical names, repeated headers kept as separate values.
 * The Fetch API joins repeated headers with ", ", so list-valued headers are split back
 * on ", " outside quotes and comments. Replay appends the values again, which joins
 * them with ", " once more: what reaches the origin is byte-for-byte what was sent.
 */
export function headerMap(headers: Headers, keep: (lowerName: string) => boolean): HeaderMap {
  const map: HeaderMap = {};
  for (const [name, value] of headers) {
    if (!keep(name)) continue;
    const values = SINGLETON_HEADERS.has(name) ? [value] : splitHeaderValue(value);
    (map[canonicalHeaderName(name)] ??= []).push(...values);
  }
  return map;
}

/** Splits a combined header value on ", " outside quoted strings and parenthesised comments. */
export function splitHeaderValue(value: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const char = value[i];
    if (char === "\\" && quoted) i++;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && char === "(") depth++;
    else if (!quoted && char === ")") depth = Math.max(0, depth - 1);
    else if (!quoted && depth === 0 && char === "," && value[i + 1] === " ") {
      parts.push(value.slice(start, i));
      start = i + 2;
      i++;
    }
  }
  parts.push(value.slice(start));
  return parts;
}

/** Rebuilds `Headers` from a recorded map (repeated values appended in order). */
export function toHeaders(map: HeaderMap): Headers {
  const headers = new Headers();
  for (const [name, values] of Object.entries(map)) {
    for (const value of values) headers.append(name, value);
  }
  return headers;
}
