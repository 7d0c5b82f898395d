// Proves finished-task notifications: Asyncgate-Callback and the app's notify url get the signed
// task record, failures are retried, and a paused app still reports what finished.
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { deliverySignature } from "../../src/delivery/signature";
import { base64ToBytes } from "../../src/shared/encoding";
import type { TaskRecord } from "../../src/shared/types";
import { CONTROL, call, createApp, received, submit, uniqueApp, waitForState, type ReceivedRequest } from "./helpers";

const decodeText = (base64: string) => new TextDecoder().decode(base64ToBytes(base64));

/** Requests the origin got for a task on a path prefix (callbacks carry Asyncgate-Task-Id too). */
async function receivedOn(id: string, prefix: string, count: number): Promise<ReceivedRequest[]> {
  return vi.waitUntil(
    async () => {
      const matching = (await received(id)).filter((request) => request.url.startsWith(prefix));
      return matching.length >= count ? matching : undefined;
    },
    { timeout: 10_000, interval: 50 },
  ) as Promise<ReceivedRequest[]>;
}

describe("notifications", () => {
  it("POSTs the signed record to Asyncgate-Callback when the task finishes", async () => {
    const app = uniqueApp("cb");
    const created = await createApp(app);
    const id = await submit(app, "/work", {
      body: "{}",
      headers: { "asyncgate-callback": `${env.TEST_ORIGIN}/callback/ok?ref=1` },
    });
    await waitForState(id, [10]);
    const [callback] = await receivedOn(id, "/callback/ok", 1);
    expect(callback!.method).toBe("POST");
    expect(callback!.url).toBe("/callback/ok?ref=1");
    expect(callback!.headers["content-type"]).toBe("application/json");
    expect(callback!.headers["asyncgate-event"]).toBe("TaskFinish");
    const record = JSON.parse(decodeText(callback!.body)) as TaskRecord;
    expect(record).toMatchObject({ id, app, state: 10, attempts: 1 });
    const signature = callback!.headers["asyncgate-signature"]!;
    const timestamp = Number(/t=(\d+)/.exec(signature)![1]);
    const bytes = base64ToBytes(callback!.body);
    expect(signature).toBe(await deliverySignature([created["signing_secret"] as string], id, timestamp, bytes));
  });

  it("retries a failing callback until it is accepted", async () => {
    const app = uniqueApp("cbretry");
    await createApp(app);
    const key = crypto.randomUUID();
    const id = await submit(app, "/work", {
      body: "{}",
      headers: { "asyncgate-callback": `${env.TEST_ORIGIN}/flaky/${key}/1` },
    });
    const attempts = await receivedOn(id, `/flaky/${key}`, 2);
    expect(attempts.length).toBe(2);
  });

  it("notifies the app's notify url of failed tasks too, also while paused", async () => {
    const app = uniqueApp("ntf");
    await createApp(app, {
      retry: { max_attempts: 1 },
      notify: { url: `${env.TEST_ORIGIN}/notify/${app}`, state: "On" },
    });
    const failed = await submit(app, "/status/500", { body: "{}" });
    const [notification] = await receivedOn(failed, `/notify/${app}`, 1);
    expect(JSON.parse(decodeText(notification!.body))).toMatchObject({
      id: failed,
      state: 11,
      response: { status_code: 500 },
    });

    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Paused"}' })).status).toBe(200);
    const waiting = await submit(app, "/never", { body: "{}" });
    expect((await call(`${CONTROL}/v1/task/${waiting}`, { method: "DELETE" })).status).toBe(200);
    const [canceled] = await receivedOn(waiting, `/notify/${app}`, 1);
    expect(JSON.parse(decodeText(canceled!.body))).toMatchObject({ id: waiting, state: 11, error: "canceled" });
  });
});
