/**
 * `Asyncgate-Signature`, so an origin can prove a delivery came from the gateway:
 *
 *   Asyncgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<task id>.<t>." + body)>
 *
 * The origin recomputes the HMAC with the app's signing secret (shown once, when
 * the app is created) and rejects stale timestamps.
 */
import { bytesToHex, concatBytes } from "../shared/encoding";
import { hmac } from "../shared/hmac";

const encoder = new TextEncoder();

export async function deliverySignature(secret: string, taskId: string, timestamp: number, body: Uint8Array): Promise<string> {
  const mac = await hmac("SHA-256", secret, concatBytes(encoder.encode(`${taskId}.${timestamp}.`), body));
  return `t=${timestamp},v1=${bytesToHex(mac)}`;
}
