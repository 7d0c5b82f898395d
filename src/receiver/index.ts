/**
 * Verifying asyncgate's deliveries and notifications at the origin: the Standard Webhooks
 * scheme (https://www.standardwebhooks.com), dependency-free (the shared encodings and HMAC are
 * bundled in), Web Crypto only, so the same code runs in Node ≥ 20, Workers and browsers.
 *
 *   webhook-id: <task id>
 *   webhook-timestamp: <unix seconds>
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> [v1,<…> …]
 *
 * `key` is the base64 after `whsec_` in the app's signing secret. While a rotated-out secret
 * still verifies (24 h), deliveries carry one signature per secret; any one of them verifying
 * is enough.
 *
 *   const receiver = new Receiver({ signingSecret: process.env.ASYNCGATE_SIGNING_SECRET });
 *   await receiver.verify({ body: rawBody, headers: request.headers }); // or throws
 */
import { base64ToBytes, bytesToBase64, concatBytes, timingSafeEqual } from "../shared/encoding";
import { hmacWithKey } from "../shared/hmac";

export type WebhookVerificationErrorCode =
  "missing_headers" | "invalid_timestamp" | "timestamp_out_of_tolerance" | "invalid_signature";

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
  constructor(
    readonly code: WebhookVerificationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ReceiverOptions {
  /** The app's signing secret (`whsec_…`), as `POST /v1/apps` or a rotation answered it. */
  signingSecret: string;
  /** The secret that replaces it after a rotation, accepted too while both are in use. */
  nextSigningSecret?: string;
}

export type HeaderSource = Headers | Record<string, string | string[] | undefined>;

export interface VerifyInput {
  /** The raw body, exactly as received (before any JSON parsing). */
  body: string | Uint8Array | ArrayBuffer;
  headers: HeaderSource;
  /** How far `webhook-timestamp` may be from now, either way. @default 300 */
  toleranceSeconds?: number;
  /** Now, in unix seconds (tests). @default the clock */
  nowSeconds?: number;
}

const encoder = new TextEncoder();

function header(headers: HeaderSource, name: string): string | null {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name);
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((candidate) => candidate.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

/** The HMAC key a Standard Webhooks secret names: the base64 after `whsec_`. */
export function secretKeyBytes(secret: string): Uint8Array {
  const encoded = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  try {
    return base64ToBytes(encoded);
  } catch {
    throw new TypeError("a signing secret is whsec_ followed by base64");
  }
}

/** `v1,<base64>` for `id`, `timestamp` and `body` under `secret`: what the gateway sends. */
export async function webhookSignature(
  secret: string,
  id: string,
  timestamp: number,
  body: Uint8Array,
): Promise<string> {
  const content = concatBytes(encoder.encode(`${id}.${timestamp}.`), body);
  return `v1,${bytesToBase64(await hmacWithKey("SHA-256", `whsec:${secret}`, () => secretKeyBytes(secret), content))}`;
}

export class Receiver {
  readonly #secrets: string[];

  constructor(options: ReceiverOptions) {
    if (!options.signingSecret) throw new TypeError("signingSecret is required");
    this.#secrets = [options.signingSecret, ...(options.nextSigningSecret ? [options.nextSigningSecret] : [])];
    for (const secret of this.#secrets) secretKeyBytes(secret);
  }

  /** Resolves true when the request was signed by the gateway with one of the secrets; rejects with a {@link WebhookVerificationError}. */
  async verify(input: VerifyInput): Promise<true> {
    const id = header(input.headers, "webhook-id");
    const timestampText = header(input.headers, "webhook-timestamp");
    const signatures = header(input.headers, "webhook-signature");
    if (!id || !timestampText || !signatures) {
      throw new WebhookVerificationError(
        "missing_headers",
        "webhook-id, webhook-timestamp and webhook-signature are required",
      );
    }
    if (!/^\d{1,12}$/.test(timestampText.trim()))
      throw new WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not unix seconds");
    const timestamp = Number(timestampText.trim());
    const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
    const tolerance = input.toleranceSeconds ?? 300;
    if (Math.abs(now - timestamp) > tolerance) {
      throw new WebhookVerificationError(
        "timestamp_out_of_tolerance",
        `webhook-timestamp is more than ${tolerance} s from now`,
      );
    }
    const body =
      typeof input.body === "string"
        ? encoder.encode(input.body)
        : input.body instanceof Uint8Array
          ? input.body
          : new Uint8Array(input.body);
    const offered = signatures.split(" ").filter((entry) => entry.startsWith("v1,"));
    for (const secret of this.#secrets) {
      const expected = await webhookSignature(secret, id, timestamp, body);
      // Every offered signature is compared: which one matched is no secret.
      if (offered.map((candidate) => timingSafeEqual(candidate, expected)).includes(true)) return true;
    }
    throw new WebhookVerificationError("invalid_signature", "no webhook-signature matches the signing secret");
  }
}
