/**
 * What a request offers as proof of who sent it, read before anything is verified:
 * a Qiniu access token (`Authorization: Qiniu <AK>:<sign>`), a bearer token (the key pair
 * itself, `Authorization: Bearer <AK>:<SK>`, for clients that can send nothing else: Cloud
 * Tasks' and QStash's) or, on the live feed's WebSocket upgrade only, a signed expiring URL. Checks that need no secret happen
 * here (shape, size, the replay window); the signature is verified by whoever holds
 * the key's secret: the Worker for the admin pair, the app's object for its keys.
 */
import { readCosSignature, verifyCosSignature, type CosSignature } from "./cos-signature";
import { readSdkSignature, sdkDateMs, verifySdkSignature, type SdkSignature } from "./huawei-sdk";
import { parseAuthorization, parseQiniuDate, verifySignature } from "./qiniu";
import { parseUrlToken, verifyUrlToken, type UrlToken } from "./url-token";
import { GatewayError } from "../http/errors";
import { timingSafeEqual } from "../shared/encoding";

/** The parts of a request its Qiniu signature covers, the body aside. */
export interface SignedRequest {
  method: string;
  pathAndQuery: string;
  host: string;
  contentType: string | null;
  /** Only the `X-Qiniu-*` headers: the others are not signed. */
  qiniuHeaders: [string, string][];
}

export type Proof =
  | { kind: "token"; accessKey: string; sign: string; request: SignedRequest }
  | { kind: "url"; accessKey: string; token: UrlToken }
  /** `Authorization: Bearer <access key>:<secret key>`: over HTTPS only (or to a loopback host). */
  | { kind: "bearer"; accessKey: string; secret: string }
  /** Huawei Cloud's AK/SK signing, on the FunctionGraph front door. */
  | { kind: "sdk-hmac-sha256"; accessKey: string; signature: SdkSignature }
  /** Tencent COS request signing, on the Tencent CI front door. */
  | { kind: "cos"; accessKey: string; signature: CosSignature };

export interface ProofRules {
  /** Only the WebSocket upgrade of `GET /v1/tasks` accepts a signed URL. */
  urlTokenAllowed: boolean;
  /** REQUIRE_SIGNED_DATE: a request without `X-Qiniu-Date` is refused. */
  requireSignedDate: boolean;
  nowMs: number;
}

/** How far `X-Qiniu-Date` may be from now: a captured request cannot be replayed later. */
export const REPLAY_WINDOW_MS = 15 * 60 * 1000;
/** How far ahead a signed URL's deadline may be. */
export const MAX_URL_TOKEN_AHEAD_S = 24 * 3600;
/** Longer Authorization values are malformed: a real token is ~100 characters. */
export const MAX_AUTHORIZATION_CHARS = 512;

export const unauthorized = (message: string, code = "unauthorized") => new GatewayError(401, code, message);

/** Reads a request's proof; 401 when there is none, or it is malformed, stale or not allowed here. */
export function readProof(request: Request, rules: ProofRules): Proof {
  const url = new URL(request.url);
  const host = request.headers.get("host") ?? url.host;
  const authorization = request.headers.get("authorization");
  if (authorization === null) {
    // A URL token anywhere else is no authentication at all (and so: 401 below).
    const token = rules.urlTokenAllowed ? parseUrlToken(`${url.protocol}//${host}${url.pathname}${url.search}`) : null;
    if (token) return urlProof(token, rules.nowMs);
    throw unauthorized("missing Authorization: expected 'Qiniu <AccessKey>:<Sign>'");
  }
  if (/^bearer\s/i.test(authorization)) return bearerProof(authorization, url, host);
  const token = authorization.length > MAX_AUTHORIZATION_CHARS ? null : parseAuthorization(authorization);
  if (!token) throw unauthorized("malformed Authorization: expected 'Qiniu <AccessKey>:<Sign>'");
  const date = request.headers.get("x-qiniu-date");
  if (date === null) {
    if (rules.requireSignedDate)
      throw unauthorized("this gateway requires a signed X-Qiniu-Date header", "date_required");
  } else {
    const at = parseQiniuDate(date);
    if (at === null || Math.abs(rules.nowMs - at) > REPLAY_WINDOW_MS) {
      throw unauthorized("X-Qiniu-Date is malformed or more than 15 minutes from now", "request_expired");
    }
  }
  const qiniuHeaders: [string, string][] = [];
  for (const [name, value] of request.headers)
    if (name.toLowerCase().startsWith("x-qiniu-")) qiniuHeaders.push([name, value]);
  return {
    kind: "token",
    accessKey: token.accessKey,
    sign: token.sign,
    request: {
      method: request.method,
      pathAndQuery: url.pathname + url.search,
      host,
      contentType: request.headers.get("content-type"),
      qiniuHeaders,
    },
  };
}

/** The key pair of `Bearer <access key>:<secret key>`. */
const BEARER = /^bearer\s+([^\s:]{1,128}):(\S{1,256})$/i;

/** Hosts where a bearer token may travel without TLS: local development only. */
const isLoopback = (host: string) => /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$|\.localhost(:\d+)?$/.test(host);

/**
 * A bearer token: the key pair itself, so no date (nothing is signed: REQUIRE_SIGNED_DATE does
 * not apply) and never over plain HTTP, where anyone on the path would read the secret.
 */
function bearerProof(authorization: string, url: URL, host: string): Proof {
  if (url.protocol !== "https:" && !isLoopback(host)) {
    throw unauthorized("a bearer token is accepted over HTTPS only: it carries the secret key", "https_required");
  }
  const match = authorization.length > MAX_AUTHORIZATION_CHARS ? null : BEARER.exec(authorization.trim());
  if (!match) throw unauthorized("malformed Authorization: expected 'Bearer <AccessKey>:<SecretKey>'");
  return { kind: "bearer", accessKey: match[1]!, secret: match[2]! };
}

function urlProof(token: UrlToken, nowMs: number): Proof {
  const nowS = Math.floor(nowMs / 1000);
  if (token.deadline < nowS) throw unauthorized("the signed URL has expired", "request_expired");
  if (token.deadline > nowS + MAX_URL_TOKEN_AHEAD_S) {
    throw unauthorized("a signed URL's deadline (e) may be at most 24 hours ahead", "token_deadline_too_far");
  }
  return { kind: "url", accessKey: token.accessKey, token };
}

/**
 * A Huawei Cloud SDK signature (`SDK-HMAC-SHA256`), its `X-Sdk-Date` within the replay window.
 * An IAM token (`X-Auth-Token`) names a Huawei Cloud user this gateway cannot ask IAM about.
 */
export function readSdkProof(request: Request, nowMs: number): Proof {
  const authorization = request.headers.get("authorization");
  if (authorization === null && request.headers.has("x-auth-token")) {
    throw unauthorized(
      "X-Auth-Token (IAM) cannot be verified by this gateway: sign the request with an AK/SK pair (SDK-HMAC-SHA256)",
    );
  }
  if (authorization === null)
    throw unauthorized("missing Authorization: sign the request with an AK/SK pair (SDK-HMAC-SHA256)");
  if (authorization.length > MAX_AUTHORIZATION_CHARS) throw unauthorized("malformed Authorization");
  const signature = readSdkSignature({ method: request.method, url: new URL(request.url), headers: request.headers });
  switch (signature) {
    case "malformed":
      throw unauthorized("malformed Authorization: expected 'SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…'");
    case "date_missing":
      throw unauthorized("X-Sdk-Date (20060102T150405Z) is required", "request_expired");
    case "host_not_signed":
      throw unauthorized("SignedHeaders must include host");
    case "header_missing":
      throw unauthorized("a header named in SignedHeaders is missing");
  }
  if (Math.abs(nowMs - sdkDateMs(signature)) > REPLAY_WINDOW_MS) {
    throw unauthorized("X-Sdk-Date is more than 15 minutes from now", "request_expired");
  }
  return { kind: "sdk-hmac-sha256", accessKey: signature.accessKey, signature };
}

/** A COS signature whose `q-sign-time` covers now and ends at most 24 hours ahead. */
export function readCosProof(request: Request, nowMs: number): Proof {
  const authorization = request.headers.get("authorization");
  if (authorization === null)
    throw unauthorized("missing Authorization: sign the request as COS does (q-sign-algorithm=sha1&…)");
  if (authorization.length > MAX_AUTHORIZATION_CHARS * 2) throw unauthorized("malformed Authorization");
  const signature = readCosSignature({ method: request.method, url: new URL(request.url), headers: request.headers });
  switch (signature) {
    case "malformed":
      throw unauthorized("malformed Authorization: expected 'q-sign-algorithm=sha1&q-ak=…&q-signature=…'");
    case "host_not_signed":
      throw unauthorized("q-header-list must include host");
    case "param_not_signed":
      throw unauthorized("every query parameter must be signed (q-url-param-list)");
    case "param_repeated":
      throw unauthorized("a query parameter may be given once: a repeated one is not covered by the signature");
    case "header_missing":
      throw unauthorized("a header or parameter named in the signature is missing");
  }
  const nowS = Math.floor(nowMs / 1000);
  const skewS = REPLAY_WINDOW_MS / 1000;
  const { start, end } = signature.signTime;
  if (start > nowS + skewS || end < nowS || start > end) {
    throw unauthorized("the signature's q-sign-time does not cover now", "request_expired");
  }
  if (end > nowS + MAX_URL_TOKEN_AHEAD_S) {
    throw unauthorized("a signature's q-sign-time may end at most 24 hours ahead", "token_deadline_too_far");
  }
  return { kind: "cos", accessKey: signature.accessKey, signature };
}

/** Whether `proof` was made with `secretKey` (constant-time comparisons). */
export async function verifyProof(proof: Proof, secretKey: string, body: Uint8Array): Promise<boolean> {
  switch (proof.kind) {
    case "url":
      return verifyUrlToken(proof.token, secretKey);
    case "bearer":
      return timingSafeEqual(proof.secret, secretKey);
    case "sdk-hmac-sha256":
      return verifySdkSignature(proof.signature, secretKey, body);
    case "cos":
      return verifyCosSignature(proof.signature, secretKey);
    case "token":
      return verifySignature({ ...proof.request, headers: proof.request.qiniuHeaders, body }, secretKey, proof.sign);
  }
}
