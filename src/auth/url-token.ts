/**
 * Signed, expiring URLs for clients that cannot set headers (browsers opening a
 * WebSocket): Qiniu's private-URL form,
 *
 *   <url>?…&e=<deadline unix s>&token=<AK>:<urlsafe-base64 HMAC-SHA1(SK, "<url>?…&e=<deadline>")>
 *
 * exactly as the official SDK's privateDownloadUrl builds it. The scheme may be http(s)
 * or ws(s): a URL signed for `ws://` verifies when it arrives as `http://`.
 */
import { hmacSha1UrlSafe } from "./qiniu";
import { timingSafeEqual } from "../shared/encoding";

const encoder = new TextEncoder();

/** Appends `e=` and `token=` to `url`. */
export async function signUrl(url: string, deadline: number, accessKey: string, secretKey: string): Promise<string> {
  const base = `${url}${url.includes("?") ? "&" : "?"}e=${deadline}`;
  return `${base}&token=${accessKey}:${await hmacSha1UrlSafe(secretKey, encoder.encode(base))}`;
}

export interface UrlToken {
  accessKey: string;
  sign: string;
  deadline: number;
  /** The URL as signed, without its scheme: `//host/path?…&e=<deadline>`. */
  signedRest: string;
}

/** Reads the token of a URL, or null when it has none (or not in Qiniu's form). */
export function parseUrlToken(url: string): UrlToken | null {
  const match = /^[a-z]+:(\/\/.*[?&]e=(\d{1,12}))&token=([^:&]+):([A-Za-z0-9_=-]+)$/.exec(url);
  if (!match) return null;
  return { signedRest: match[1]!, deadline: Number(match[2]), accessKey: match[3]!, sign: match[4]! };
}

/** `url` without its trailing token (`[?&]e=…&token=…`), or null when it carries none. */
export function withoutUrlToken(url: string): string | null {
  const token = parseUrlToken(url);
  if (!token) return null;
  return url.slice(0, url.indexOf("//")) + token.signedRest.replace(/[?&]e=\d{1,12}$/, "");
}

export async function verifyUrlToken(token: UrlToken, secretKey: string): Promise<boolean> {
  let valid = false;
  for (const scheme of ["http:", "https:", "ws:", "wss:"]) {
    const expected = await hmacSha1UrlSafe(secretKey, encoder.encode(scheme + token.signedRest));
    valid = timingSafeEqual(expected, token.sign) || valid;
  }
  return valid;
}
