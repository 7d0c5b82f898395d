/**
 * How an origin (or a notification's receiver) proves a request came from the gateway. Every
 * delivery and notification carries both:
 *
 * - Standard Webhooks (https://www.standardwebhooks.com), so `standardwebhooks`, `svix` and
 *   asyncgate's own `Receiver` verify it in any language:
 *     webhook-id: <task id>
 *     webhook-timestamp: <unix seconds>
 *     webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded secret after whsec_, "<id>.<t>." + body)>
 * - `Asyncgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret as UTF-8, "<task id>.<t>." + body)>`,
 *   the gateway's first scheme, kept for origins written against it.
 *
 * After a rotation both the new and the previous secret sign (one `v1` each) for 24 h.
 */
import { webhookSignature } from "../receiver";
import { bytesToBase64, bytesToHex, concatBytes } from "../shared/encoding";
import { hmac } from "../shared/hmac";

const encoder = new TextEncoder();

export async function deliverySignature(
  secrets: string[],
  taskId: string,
  timestamp: number,
  body: Uint8Array,
): Promise<string> {
  const content = concatBytes(encoder.encode(`${taskId}.${timestamp}.`), body);
  const macs = await Promise.all(
    secrets.map(async (secret) => `v1=${bytesToHex(await hmac("SHA-256", secret, content))}`),
  );
  return `t=${timestamp},${macs.join(",")}`;
}

/** The headers that sign one delivery or notification, in both schemes. */
export async function signatureHeaders(
  secrets: string[],
  taskId: string,
  nowMs: number,
  body: Uint8Array,
): Promise<[string, string][]> {
  const timestamp = Math.floor(nowMs / 1000);
  const signatures = await Promise.all(secrets.map((secret) => webhookSignature(secret, taskId, timestamp, body)));
  return [
    ["webhook-id", taskId],
    ["webhook-timestamp", String(timestamp)],
    ["webhook-signature", signatures.join(" ")],
    ["Asyncgate-Signature", await deliverySignature(secrets, taskId, timestamp, body)],
  ];
}
