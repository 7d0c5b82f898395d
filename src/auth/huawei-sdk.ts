/**
 * Huawei Cloud's AK/SK request signing (`SDK-HMAC-SHA256`), as the official SDKs make it
 * (huaweicloud-sdk-core's AKSKSigner), so FunctionGraph clients authenticate unchanged:
 *
 *   CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
 *   StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(sha256(CanonicalRequest))
 *   Authorization    = SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<a;b;c>, Signature=hex(hmac-sha256(SK, StringToSign))
 *
 * The canonical URI is each path segment percent-encoded (RFC 3986 unreserved kept) with a
 * trailing `/`; the query is sorted by name, each value encoded; each signed header is
 * `name:value\n`. Reading is pure; verifying needs the secret and the body (Web Crypto).
 */
import { parseQiniuDate } from "./qiniu";
import { bytesToHex, rfc3986Encode, timingSafeEqual } from "../shared/encoding";
import { hmac } from "../shared/hmac";

export const SDK_SIGNING_ALGORITHM = "SDK-HMAC-SHA256";

/** What a signed request offers, read without any secret. */
export interface SdkSignature {
  accessKey: string;
  signature: string;
  /** `X-Sdk-Date` as sent (`20060102T150405Z`): part of the string to sign. */
  date: string;
  /** The canonical request up to (not including) its payload hash line. */
  canonicalHead: string;
  /** `X-Sdk-Content-Sha256` when sent: it must be the body's own hash (unsigned payloads are refused). */
  declaredPayloadHash: string | null;
  /** The (lower-case) headers the signature covers: its SignedHeaders. */
  signedHeaders: string[];
}

export type SdkSignatureProblem = "malformed" | "date_missing" | "host_not_signed" | "header_missing";

const encoder = new TextEncoder();

/** A received path's segments decoded (as the client had them before encoding), then encoded the SDK's way. */
export function canonicalUri(pathname: string): string {
  const uri = pathname
    .split("/")
    .map((segment) => rfc3986Encode(safeDecode(segment)))
    .join("/");
  return uri.endsWith("/") ? uri : `${uri}/`;
}

export function canonicalQuery(params: URLSearchParams): string {
  const byName = new Map<string, string[]>();
  for (const [name, value] of params) byName.set(name, [...(byName.get(name) ?? []), value]);
  const lines: string[] = [];
  for (const name of [...byName.keys()].sort()) {
    for (const value of byName.get(name)!.sort()) lines.push(`${rfc3986Encode(name)}=${rfc3986Encode(value)}`);
  }
  return lines.join("&");
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` → its parts, or null. */
export function parseSdkAuthorization(
  header: string,
): { accessKey: string; signedHeaders: string[]; signature: string } | null {
  const match = /^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
    header.trim(),
  );
  if (!match) return null;
  const signedHeaders = match[2]!.split(";");
  if (signedHeaders.some((name) => !/^[a-z0-9-]+$/.test(name))) return null;
  return { accessKey: match[1]!, signedHeaders, signature: match[3]! };
}

/**
 * Reads a request's SDK signature: the canonical request it covers (but the body's hash,
 * which the verifier computes), or what is wrong with it. `host` and the date must be signed
 * for the signature to bind the request to this gateway and this moment.
 */
export function readSdkSignature(request: {
  method: string;
  url: URL;
  headers: Headers;
}): SdkSignature | SdkSignatureProblem {
  const authorization = parseSdkAuthorization(request.headers.get("authorization") ?? "");
  if (!authorization) return "malformed";
  const date = request.headers.get("x-sdk-date");
  if (date === null || parseQiniuDate(date) === null) return "date_missing";
  if (!authorization.signedHeaders.includes("host")) return "host_not_signed";
  let headerLines = "";
  for (const name of authorization.signedHeaders) {
    const value = request.headers.get(name);
    if (value === null) return "header_missing";
    headerLines += `${name}:${value}\n`;
  }
  const canonicalHead = [
    request.method.toUpperCase(),
    canonicalUri(request.url.pathname),
    canonicalQuery(request.url.searchParams),
    headerLines,
    authorization.signedHeaders.join(";"),
  ].join("\n");
  return {
    accessKey: authorization.accessKey,
    signature: authorization.signature,
    date,
    canonicalHead,
    declaredPayloadHash: request.headers.get("x-sdk-content-sha256"),
    signedHeaders: authorization.signedHeaders,
  };
}

/** The date `X-Sdk-Date` names, in unix ms (already checked well-formed by {@link readSdkSignature}). */
export function sdkDateMs(signature: SdkSignature): number {
  return parseQiniuDate(signature.date) ?? Number.NaN;
}

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The signature for `canonicalHead` + `body` under `secretKey`, as a client computes it. */
export async function sdkSignature(
  secretKey: string,
  date: string,
  canonicalHead: string,
  body: Uint8Array,
): Promise<string> {
  const canonicalRequest = `${canonicalHead}\n${await sha256Hex(body)}`;
  const stringToSign = `${SDK_SIGNING_ALGORITHM}\n${date}\n${await sha256Hex(canonicalRequest)}`;
  return bytesToHex(await hmac("SHA-256", secretKey, encoder.encode(stringToSign)));
}

/** Whether `signature` was made with `secretKey` over exactly this body (constant-time comparison). */
export async function verifySdkSignature(
  signature: SdkSignature,
  secretKey: string,
  body: Uint8Array,
): Promise<boolean> {
  if (signature.declaredPayloadHash !== null && signature.declaredPayloadHash !== (await sha256Hex(body))) return false;
  return timingSafeEqual(
    await sdkSignature(secretKey, signature.date, signature.canonicalHead, body),
    signature.signature,
  );
}
