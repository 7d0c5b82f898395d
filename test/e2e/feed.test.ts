// Proves the live feed against `wrangler dev` with real WebSocket clients: the 15–17 s heartbeat
// window, and the SDK iterator delivering every result exactly once in seq order across a consumer
// restart and a server restart with persisted state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import qiniu from "qiniu";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { startOrigin } from "../../scripts/origin.mjs";
import { AsyncgateClient, type TaskResult } from "../../src/client/index";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

describe("live feed end to end", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  let client: AsyncgateClient;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-feed-"));

  beforeAll(async () => {
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
    client = new AsyncgateClient({
      endpoint: `http://async.localhost:${port}`,
      connectTo: `http://127.0.0.1:${port}`,
      ...E2E_KEYS,
    });
    for (const name of ["beat", "sdk", "plainfeed"]) {
      const created = await signedCall(port, `localhost:${port}`, "POST", "/v1/apps", {
        body: JSON.stringify({ name, origin: origin.url }),
      });
      expect(created.status).toBe(201);
    }
  });

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  /** A raw `ws` client, its upgrade signed with the official qiniu SDK in the Authorization header. */
  function rawSubscriber(app: string) {
    const url = `http://localhost:${port}/v1/tasks?app=${app}`;
    const mac = new qiniu.auth.digest.Mac(E2E_KEYS.accessKey, E2E_KEYS.secretKey);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/tasks?app=${app}`, {
      headers: {
        host: `localhost:${port}`,
        authorization: qiniu.util.generateAccessTokenV2(mac, url, "GET", "", undefined, {}),
      },
    });
    const opened = new Promise<number>((resolve, reject) => {
      ws.once("open", () => resolve(Date.now()));
      ws.once("error", reject);
    });
    // When the server's Close frame arrived: `ws` moves to CLOSING then, and reports "close" only
    // once the TCP connection ends (which wrangler's dev proxy delays by ~10 s).
    let closeFrameAt = 0;
    const watch = setInterval(() => {
      if (ws.readyState >= WebSocket.CLOSING && !closeFrameAt) closeFrameAt = Date.now();
    }, 20);
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      ws.once("close", (code, reason) => {
        clearInterval(watch);
        resolve({ code, reason: reason.toString(), at: closeFrameAt || Date.now() });
      }),
    );
    return { ws, opened, closed };
  }

  it("a raw ws client (no SDK) on a plain subscription receives task records and nothing else, as from Qiniu", async () => {
    const raw = rawSubscriber("plainfeed");
    await raw.opened;
    const frames: string[] = [];
    raw.ws.on("message", (data) => frames.push(data.toString()));
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const submitted = await signedCall(port, `plainfeed.async.localhost:${port}`, "POST", `/plain/${i}`, {
        body: "{}",
      });
      ids.push(submitted.json<{ id: string }>().id);
    }
    await vi.waitUntil(() => frames.length >= 2, { timeout: 20_000, interval: 50 });
    raw.ws.close(1000);
    const records = frames.map((frame) => JSON.parse(frame) as Record<string, unknown>);
    expect(
      records.every(
        (record) =>
          !("type" in record) &&
          typeof record["id"] === "string" &&
          record["state"] === 10 &&
          typeof record["seq"] === "number",
      ),
    ).toBe(true);
    expect(records.map((record) => record["id"]).sort()).toEqual([...ids].sort());
  }, 30_000);

  it("closes a silent subscriber 15–17 s after it connected; a heartbeating one stays open over 40 s", async () => {
    const silent = rawSubscriber("beat");
    const beating = rawSubscriber("beat");
    const silentOpenedAt = await silent.opened;
    await beating.opened;
    let pongs = 0;
    beating.ws.on("message", (data) => {
      if (data.toString() === "OK") pongs++;
    });
    const timer = setInterval(() => beating.ws.send("OK"), 10_000);
    let beatingClosed = false;
    void beating.closed.then(() => (beatingClosed = true));
    try {
      const close = await silent.closed;
      expect(close.code).toBe(4408);
      expect(close.reason).toBe("heartbeat timeout");
      const after = close.at - silentOpenedAt;
      expect(after).toBeGreaterThanOrEqual(15_000);
      expect(after).toBeLessThanOrEqual(17_000);
      await new Promise((resolve) => setTimeout(resolve, 40_000 - (Date.now() - silentOpenedAt)));
      expect(beatingClosed).toBe(false);
      expect(beating.ws.readyState).toBe(WebSocket.OPEN);
      expect(pongs).toBeGreaterThanOrEqual(3);
    } finally {
      clearInterval(timer);
      beating.ws.close(1000);
    }
  }, 60_000);

  it("the SDK iterator yields every result exactly once, in seq order, across a consumer restart and a server restart", async () => {
    const submitted: string[] = [];
    const seen: TaskResult[] = [];
    const submitBatch = async (count: number) => {
      for (let i = 0; i < count; i++)
        submitted.push((await client.submit("sdk", `/item/${submitted.length}`, { body: "{}" })).id);
    };
    const settle = async () => {
      for (const id of submitted) expect((await client.waitForTask(id, { timeoutMs: 20_000 })).state).toBe(10);
    };

    // First consumer: takes 3 results, then stops (as if killed), remembering its last seq.
    const first = client.subscribe("sdk", { heartbeatMs: 5_000 });
    const firstPull = first.next(); // connect before anything is submitted
    await new Promise((resolve) => setTimeout(resolve, 500));
    await submitBatch(5);
    seen.push((await firstPull).value as TaskResult);
    for (let i = 0; i < 2; i++) seen.push((await first.next()).value as TaskResult);
    await first.return!();
    await settle();

    // While nobody listens, more tasks finish.
    await submitBatch(3);
    await settle();

    // The restarted consumer resumes from its last seq; the server restarts under it.
    const second = client.subscribe("sdk", {
      since: seen[seen.length - 1]!.seq,
      heartbeatMs: 5_000,
      reconnect: { minMs: 200, maxMs: 1_000 },
    });
    for (let i = 0; i < 5; i++) seen.push((await second.next()).value as TaskResult);
    await gateway.stop();
    gateway = await startGateway({ port, persistTo });
    await submitBatch(4);
    const pulling = (async () => {
      while (seen.length < submitted.length) seen.push((await second.next()).value as TaskResult);
    })();
    await vi.waitUntil(() => seen.length === submitted.length, { timeout: 30_000, interval: 100 });
    await pulling;
    await second.return!();

    const seqs = seen.map((result) => result.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    expect(seen.map((result) => result.id).sort()).toEqual([...submitted].sort());
    expect(new Set(seen.map((result) => result.id)).size).toBe(submitted.length);
  }, 90_000);
});
