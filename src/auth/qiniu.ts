/**
 * Qiniu's access token (`Authorization: Qiniu <AK>:<sign>`), the algorithm the
 * official SDKs call generateAccessTokenV2:
 *
 *   <METHOD> <path>[?<query>]\nHost: <host>\nContent-Type: <type>\n
 *   [<sorted X-Qiniu-* headers, one per line>\n]\n[<body>]
 *
 * signed with HMAC-SHA1 and encoded as URL-safe base64. The body is signed unless
 * the content type is application/octet-stream; a missing content type signs as
 * application/x-www-form-urlencoded. Web Crypto only: runs in Workers, Node and browsers.
 */
import { bytesToBase64, concatBytes, timingSafeEqual, toUrlSafeBase64 } from "../shared/encoding";
import { hmac } from "../shared/hmac";
import { canonicalHeaderName } from "../http/headers";

export interface SignedParts {
  method: string;
  /** Path and raw query, as sent: `/v1/task/abc?x=1`. */
  pathAndQuery: string;
  /** The Host header as received. */
  host: string;
  contentType: string | null;
  /** Every request header; the X-Qiniu-* ones are signed. */
  headers: Iterable<[string, string]>;
  body: Uint8Array;
}

const encoder = new TextEncoder();

export function signingString(parts: SignedParts): Uint8Array {
  const contentType = parts.contentType || "application/x-www-form-urlencoded";
  let text = `${parts.method.toUpperCase()} ${parts.pathAndQuery}\nHost: ${parts.host}\nContent-Type: ${contentType}`;
  const qiniuHeaders: [string, string][] = [];
  for (const [name, value] of parts.headers) {
    const canonical = canonicalHeaderName(name);
    if (canonical.startsWith("X-Qiniu-") && canonical.length > "X-Qiniu-".length) qiniuHeaders.push([canonical, value]);
  }
  qiniuHeaders.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of qiniuHeaders) text += `\n${name}: ${value}`;
  text += "\n\n";
  const head = encoder.encode(text);
  const signBody = parts.body.length > 0 && contentType !== "application/octet-stream";
  return signBody ? concatBytes(head, parts.body) : head;
}

export async function hmacSha1UrlSafe(secretKey: string, data: Uint8Array): Promise<string> {
  return toUrlSafeBase64(bytesToBase64(await hmac("SHA-1", secretKey, data)));
}

/** `Qiniu <AK>:<sign>` for a request, as a client computes it. */
export async function qiniuAuthorization(accessKey: string, secretKey: string, parts: SignedParts): Promise<string> {
  return `Qiniu ${accessKey}:${await hmacSha1UrlSafe(secretKey, signingString(parts))}`;
}

export function parseAuthorization(header: string | null): { accessKey: string; sign: string } | null {
  const match = header === null ? null : /^Qiniu ([^:\s]+):([A-Za-z0-9_=-]+)$/.exec(header.trim());
  return match ? { accessKey: match[1]!, sign: match[2]! } : null;
}

/**
 * Whether `sign` is the request's signature under `secretKey`, compared in constant time.
 * The official Node SDK signs `Host: <host:port>:<port>` when the URL has a port (it
 * appends the port to a host that already carries it), so that form is accepted too:
 * tokens the SDK makes must verify.
 */
export async function verifySignature(parts: SignedParts, secretKey: string, sign: string): Promise<boolean> {
  if (timingSafeEqual(await hmacSha1UrlSafe(secretKey, signingString(parts)), sign)) return true;
  // Which of the two forms matched is no secret; the comparison of each stays constant-time.
  if (!/:\d+$/.test(parts.host)) return false;
  const sdkHost = `${parts.host}:${parts.host.slice(parts.host.lastIndexOf(":") + 1)}`;
  return timingSafeEqual(await hmacSha1UrlSafe(secretKey, signingString({ ...parts, host: sdkHost })), sign);
}

/** Unix ms → `20060102T150405Z`, the form of `X-Qiniu-Date`. */
export function formatQiniuDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/** `X-Qiniu-Date: 20060102T150405Z` → unix ms, or null when malformed. */
export function parseQiniuDate(value: string): number | null {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value.trim());
  if (!match) return null;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  const ms = Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
  return Number.isNaN(ms) ? null : ms;
}
