/**
 * Notifications: a finished task's record POSTed to the task's `Asyncgate-Callback`
 * or the app's notify url, signed like a delivery so the receiver can verify it.
 */
import { signatureHeaders } from "./signature";
import type { NotificationDelivery } from "../shared/types";

export async function postNotification(
  delivery: NotificationDelivery,
  nowMs: number = Date.now(),
): Promise<{ delivered: boolean; detail: string }> {
  const body = new TextEncoder().encode(delivery.body);
  try {
    const response = await fetch(delivery.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Asyncgate-Event": "TaskFinish",
        "Asyncgate-Task-Id": delivery.taskId,
        "Asyncgate-App": delivery.app,
        ...Object.fromEntries(await signatureHeaders(delivery.signingSecrets, delivery.taskId, nowMs, body)),
      },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(delivery.timeoutMs),
    });
    await response.body?.cancel();
    const delivered = response.status >= 200 && response.status <= 299;
    return { delivered, detail: `HTTP ${response.status}` };
  } catch (error) {
    return { delivered: false, detail: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}
