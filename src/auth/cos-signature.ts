/**
 * Tencent Cloud COS request signing, as cos-nodejs-sdk-v5 makes it (its getAuth; its
 * camSafeUrlEncode is rfc3986Encode), so the
 * official SDK's `cos.request` calls authenticate unchanged:
 *
 *   Authorization = q-sign-algorithm=sha1&q-ak=<SecretId>&q-sign-time=<start;end>&q-key-time=<start;end>
 *                   &q-header-list=<a;b>&q-url-param-list=<x;y>&q-signature=<hex>
 *   SignKey       = hex(hmac-sha1(SecretKey, KeyTime))
 *   HttpString    = method \n path \n x=v&y=w \n a=v&b=w \n        (names lowercased, values encoded)
 *   StringToSign  = sha1 \n SignTime \n hex(sha1(HttpString)) \n
 *   Signature     = hex(hmac-sha1(SignKey, StringToSign))
 *
 * COS signs no body hash: the body is bound only by the signed Content-Length (the protocol's
 * own limit). Here every query parameter and `host` must be signed, so a signed request can be
 * replayed neither against another host nor with other filters. Reading is pure.
 */
import { bytesToHex, rfc3986Encode, timingSafeEqual } from "../shared/encoding";
import { hmac } from "../shared/hmac";

export interface CosSignature {
  accessKey: string;
  signature: string;
  /** The signature's validity, unix seconds. */
  signTime: { start: number; end: number };
  signTimeText: string;
  keyTime: string;
  /** HttpString: what the signature covers. */
  httpString: string;
}

export type CosSignatureProblem =
  "malformed" | "host_not_signed" | "param_not_signed" | "param_repeated" | "header_missing";

const encoder = new TextEncoder();

const TIME_RANGE = /^(\d{1,12});(\d{1,12})$/;

/** The `q-*` fields of a COS Authorization value, or null when one is missing or malformed. */
export function parseCosAuthorization(header: string): {
  accessKey: string;
  signTime: string;
  keyTime: string;
  headerList: string[];
  paramList: string[];
  signature: string;
} | null {
  const fields = new Map<string, string>();
  for (const part of header.trim().split("&")) {
    const eq = part.indexOf("=");
    if (eq === -1 || fields.has(part.slice(0, eq))) return null;
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const accessKey = fields.get("q-ak");
  const signTime = fields.get("q-sign-time");
  const keyTime = fields.get("q-key-time");
  const headerList = fields.get("q-header-list");
  const paramList = fields.get("q-url-param-list");
  const signature = fields.get("q-signature");
  if (fields.get("q-sign-algorithm") !== "sha1" || !accessKey || headerList === undefined || paramList === undefined)
    return null;
  if (!signTime || !TIME_RANGE.test(signTime) || !keyTime || !TIME_RANGE.test(keyTime)) return null;
  if (!signature || !/^[0-9a-f]{40}$/.test(signature)) return null;
  const list = (value: string) => (value === "" ? [] : value.split(";"));
  return { accessKey, signTime, keyTime, headerList: list(headerList), paramList: list(paramList), signature };
}

/** `name=value` lines for the listed names, in the list's order (the signer sorts it); null when one is absent. */
function signedPairs(listed: string[], present: [string, string][]): string | null {
  const byName = new Map(present.map(([name, value]) => [rfc3986Encode(name).toLowerCase(), value]));
  const pairs: string[] = [];
  for (const name of listed) {
    const value = byName.get(name);
    if (value === undefined) return null;
    pairs.push(`${name}=${rfc3986Encode(value)}`);
  }
  return pairs.join("&");
}

/** Reads a request's COS signature: what it covers, or what is wrong with it. No secret needed. */
export function readCosSignature(request: {
  method: string;
  url: URL;
  headers: Headers;
}): CosSignature | CosSignatureProblem {
  const authorization = parseCosAuthorization(request.headers.get("authorization") ?? "");
  if (!authorization) return "malformed";
  if (!authorization.headerList.includes("host")) return "host_not_signed";
  const query = [...request.url.searchParams];
  // A name given twice would be signed with one value and read with another: refused.
  const names = query.map(([name]) => rfc3986Encode(name).toLowerCase());
  if (new Set(names).size !== names.length) return "param_repeated";
  const listedParams = new Set(authorization.paramList);
  if (query.some(([name]) => !listedParams.has(rfc3986Encode(name).toLowerCase()))) return "param_not_signed";
  const params = signedPairs(authorization.paramList, query);
  const headers = signedPairs(authorization.headerList, [...request.headers]);
  if (params === null || headers === null) return "header_missing";
  let path: string;
  try {
    path = decodeURIComponent(request.url.pathname);
  } catch {
    return "malformed";
  }
  const [start, end] = authorization.signTime.split(";").map(Number) as [number, number];
  return {
    accessKey: authorization.accessKey,
    signature: authorization.signature,
    signTime: { start, end },
    signTimeText: authorization.signTime,
    keyTime: authorization.keyTime,
    httpString: [request.method.toLowerCase(), path, params, headers, ""].join("\n"),
  };
}

/** The signature over `httpString` under `secretKey`, as a client computes it. */
export async function cosSignature(
  secretKey: string,
  keyTime: string,
  signTime: string,
  httpString: string,
): Promise<string> {
  const signKey = bytesToHex(await hmac("SHA-1", secretKey, encoder.encode(keyTime)));
  const digest = bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-1", encoder.encode(httpString))));
  return bytesToHex(await hmac("SHA-1", signKey, encoder.encode(`sha1\n${signTime}\n${digest}\n`)));
}

/** Whether the request was signed with `secretKey` (constant-time comparison). */
export async function verifyCosSignature(signature: CosSignature, secretKey: string): Promise<boolean> {
  return timingSafeEqual(
    await cosSignature(secretKey, signature.keyTime, signature.signTimeText, signature.httpString),
    signature.signature,
  );
}
