// Proves the gateway end to end under `wrangler dev` (workerd, Miniflare Queues and Durable Objects),
// with a real Node HTTP origin and requests signed by the official qiniu SDK.
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

interface Task {
  id: string;
  state: number;
  attempts: number;
  request: { method: string; path: string; raw_query: string; header: Record<string, string[]>; body: string };
  response?: { status_code: number; header: Record<string, string[]>; body: string };
}

describe("wrangler dev end to end", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-e2e-"));
  const control = () => `localhost:${port}`;

  beforeAll(async () => {
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
  });

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  const getTask = async (id: string) => {
    const response = await signedCall(port, control(), "GET", `/v1/task/${id}`);
    expect(response.status).toBe(200);
    return response.json<Task>();
  };
  const waitForState = (id: string, state: number) =>
    vi.waitUntil(async () => ((await getTask(id)).state === state ? getTask(id) : undefined), {
      timeout: 20_000,
      interval: 100,
    });

  it("create app → submit → origin gets the exact request with metadata → GET shows 10 and the response", async () => {
    const created = await signedCall(port, control(), "POST", "/v1/apps", {
      body: JSON.stringify({ name: "e2e", origin: origin.url, retry: { min_backoff: 0.1, max_backoff: 0.5 } }),
    });
    expect(created.status).toBe(201);
    const { signing_secret: signingSecret, host } = created.json<{ signing_secret: string; host: string }>();
    expect(host).toBe("e2e.async.localhost");

    const body = JSON.stringify({ order: 42, note: "häagen-dazs" });
    const submitted = await signedCall(
      port,
      `e2e.async.localhost:${port}`,
      "POST",
      "/orders/%C3%A9t%C3%A9?priority=high&x=1&x=2",
      {
        body,
        headers: { "content-type": "application/json; charset=utf-8", "x-request-tag": "e2e" },
      },
    );
    expect(submitted.status).toBe(202);
    expect(submitted.headers["x-reqid"]).toBeTruthy();
    const { id } = submitted.json<{ id: string }>();
    expect(submitted.headers["location"]).toBe(`http://async.localhost:${port}/v1/task/${id}`);

    const task = await waitForState(id, 10);
    expect(task.attempts).toBe(1);
    expect(task.request).toMatchObject({
      method: "POST",
      path: "/orders/%C3%A9t%C3%A9",
      raw_query: "?priority=high&x=1&x=2",
    });
    expect(Buffer.from(task.request.body, "base64").toString("utf8")).toBe(body);
    expect(task.response?.status_code).toBe(200);

    const deliveries = origin.received.filter((r) => r.headers["asyncgate-task-id"] === id);
    expect(deliveries.length).toBe(1);
    const delivery = deliveries[0]!;
    expect(delivery.method).toBe("POST");
    expect(delivery.url).toBe("/orders/%C3%A9t%C3%A9?priority=high&x=1&x=2");
    expect(Buffer.from(delivery.body, "base64").toString("utf8")).toBe(body);
    expect(delivery.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(delivery.headers["x-request-tag"]).toBe("e2e");
    expect(delivery.headers["authorization"]).toBeUndefined();
    expect(delivery.headers["asyncgate-app"]).toBe("e2e");
    expect(delivery.headers["asyncgate-retry-count"]).toBe("0");
    expect(delivery.headers["asyncgate-execution-count"]).toBe("0");
    expect(delivery.headers["asyncgate-eta"]).toMatch(/^\d+\.\d{3}$/);

    // The origin can prove the call came from the gateway.
    const signature = String(delivery.headers["asyncgate-signature"]);
    const [, timestamp, mac] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature) ?? [];
    const expected = createHmac("sha256", signingSecret)
      .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(delivery.body, "base64")]))
      .digest("hex");
    expect(mac).toBe(expected);

    const echoed = JSON.parse(Buffer.from(task.response!.body, "base64").toString("utf8")) as { url: string };
    expect(echoed.url).toBe(delivery.url);
  });

  it("retries a failing origin and records the final success", async () => {
    const submitted = await signedCall(port, `e2e.async.localhost:${port}`, "POST", `/flaky/e2e-${Date.now()}/2`, {
      body: "{}",
    });
    expect(submitted.status).toBe(202);
    const task = await waitForState(submitted.json<{ id: string }>().id, 10);
    expect(task.attempts).toBe(3);
  });

  it("answers SPEC §8 JSON errors", async () => {
    const unsigned = await signedCall(port, control(), "GET", "/v1/apps", { unsigned: true });
    expect(unsigned.status).toBe(401);
    expect(unsigned.json()).toMatchObject({ code: "unauthorized", req_id: unsigned.headers["x-reqid"] });
    const unknown = await signedCall(port, `nope.async.localhost:${port}`, "POST", "/x", { body: "{}" });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ code: "app_not_found" });
  });

  it("a task accepted before a restart is delivered after it (state persisted, alarm re-armed)", async () => {
    const submitted = await signedCall(port, `e2e.async.localhost:${port}`, "POST", "/after-restart", {
      body: "{}",
      headers: { "asyncgate-delay": "2s" },
    });
    expect(submitted.status).toBe(202);
    const { id } = submitted.json<{ id: string }>();
    await gateway.stop();
    gateway = await startGateway({ port, persistTo });
    const task = await waitForState(id, 10);
    expect(task.attempts).toBe(1);
  });
});
