// Proves the live result feed on the app's object: pushes, hibernation (evictDurableObject), the 15 s
// heartbeat enforced by one multiplexed alarm, resume without gap or duplicate (seqs continue across an app's
// re-creation), limits, bad frames, URL tokens; flow control (ACK <seq>, 4413, a replay paced by acknowledgements).
import { env, exports } from "cloudflare:workers";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import type { SubscriberAttachment } from "../../src/app/heartbeat";
import { signUrl } from "../../src/auth/url-token";
import { appQueue } from "../../src/app/stubs";
import type { TaskRecord } from "../../src/shared/types";
import { MAX_UNACKED_BYTES, REPLAY_WINDOW_BYTES } from "../../src/app/flow-control";
import { openStore } from "../../src/app/store";
import { subscription } from "../../src/client/subscription";
import {
  CONTROL,
  call,
  createApp,
  finishParked,
  insertResults,
  parkedTask,
  signedRequest,
  sql,
  submit,
  uniqueApp,
  waitForState,
} from "./helpers";

type Result = TaskRecord & { seq: number };

interface Subscriber {
  ws: WebSocket;
  hello: { type: "hello"; app: string; seq: number }[];
  results: Result[];
  texts: string[];
  /** Bytes of the result frames received. */
  resultBytes: number;
  /** Set: each result received is acknowledged at once (`ACK <seq>`). */
  autoAck: boolean;
  closed: Promise<{ code: number; reason: string }>;
  /** The close once it came, else null. */
  closedWith: { code: number; reason: string } | null;
}

async function upgrade(app: string, query = "", init: { unsigned?: boolean; url?: string } = {}): Promise<Response> {
  const url = init.url ?? `${CONTROL}/v1/tasks?app=${app}${query}`;
  const request = await signedRequest(url, { headers: { upgrade: "websocket" }, unsigned: init.unsigned });
  return exports.default.fetch(request);
}

async function subscribe(app: string, query = ""): Promise<Subscriber> {
  const response = await upgrade(app, query);
  if (response.status !== 101 || !response.webSocket)
    throw new Error(`upgrade: ${response.status} ${await response.text()}`);
  return attach(response.webSocket);
}

function attach(ws: WebSocket): Subscriber {
  const subscriber: Subscriber = {
    ws,
    hello: [],
    results: [],
    texts: [],
    resultBytes: 0,
    autoAck: false,
    closed: Promise.resolve({ code: 0, reason: "" }),
    closedWith: null,
  };
  subscriber.closed = new Promise((resolve) =>
    ws.addEventListener("close", (event) => {
      subscriber.closedWith = { code: event.code, reason: event.reason };
      resolve(subscriber.closedWith);
    }),
  );
  ws.addEventListener("message", (event) => {
    const text = event.data as string;
    if (text === "OK") return subscriber.texts.push(text);
    const frame = JSON.parse(text) as Result | Subscriber["hello"][number];
    if ("type" in frame) return subscriber.hello.push(frame);
    subscriber.results.push(frame);
    subscriber.resultBytes += new TextEncoder().encode(text).byteLength;
    if (subscriber.autoAck) ws.send(`ACK ${frame.seq}`);
  });
  ws.accept();
  return subscriber;
}

/** Moves every subscriber's signs of life back by `ms`, as if that much time had passed. */
async function age(app: string, ms: number[]): Promise<void> {
  await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => {
    state.getWebSockets().forEach((ws, i) => {
      const at = Date.now() - (ms[i] ?? ms[0]!);
      ws.serializeAttachment({
        acceptedAt: at,
        lastMessageAt: at,
        lastAutoResponseAt: 0,
      } satisfies SubscriberAttachment);
    });
  });
}

describe("live results", () => {
  it("pushes each finished task with a per-app seq", async () => {
    const app = uniqueApp("live");
    await createApp(app);
    const subscriber = await subscribe(app);
    const first = await submit(app, "/a", { body: "{}" });
    const second = await submit(app, "/status/404", { body: "{}", headers: { "asyncgate-retries": "0" } });
    await vi.waitUntil(() => subscriber.results.length === 2, { timeout: 5000 });
    const byId = new Map(subscriber.results.map((result) => [result.id, result]));
    expect(byId.get(first)).toMatchObject({ state: 10, app });
    expect(byId.get(second)).toMatchObject({ state: 11, response: { status_code: 404 } });
    const seqs = subscriber.results.map((result) => result.seq);
    expect(seqs[1]).toBeGreaterThan(seqs[0]!);
    subscriber.ws.close(1000, "done");
  });

  it("after eviction a heartbeat still round-trips and the next result still arrives", async () => {
    const app = uniqueApp("hib");
    await createApp(app);
    const subscriber = await subscribe(app);
    await evictDurableObject(appQueue(env, app));
    subscriber.ws.send("OK");
    await vi.waitUntil(() => subscriber.texts.length === 1, { timeout: 5000 });
    const id = await finishParked(app);
    await vi.waitUntil(() => subscriber.results.some((result) => result.id === id), { timeout: 5000 });
  });

  it("closes a subscriber silent for more than 15 s with 4408, also after eviction", async () => {
    const app = uniqueApp("silent");
    await createApp(app);
    const subscriber = await subscribe(app);
    await age(app, [16_000]);
    await evictDurableObject(appQueue(env, app));
    // Woken again (by its alarm), the object checks the heartbeat deadlines at once.
    await runDurableObjectAlarm(appQueue(env, app));
    expect(await subscriber.closed).toEqual({ code: 4408, reason: "heartbeat timeout" });
  });

  it("never closes before 15 s; one alarm tracks the earliest of many deadlines", async () => {
    const app = uniqueApp("many");
    await createApp(app);
    const subscribers = [await subscribe(app), await subscribe(app), await subscribe(app)];
    await age(app, [14_000, 10_000, 5_000]);
    const before = Date.now();
    expect(await runDurableObjectAlarm(appQueue(env, app))).toBe(true);
    const alarm = await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) =>
      state.storage.getAlarm(),
    );
    // The earliest deadline: 14 s old → due in ~1 s (+ slack), not the others'.
    expect(alarm).not.toBeNull();
    expect(alarm! - before).toBeGreaterThan(800);
    expect(alarm! - before).toBeLessThan(1_600);
    const open = await runInDurableObject(
      appQueue(env, app),
      (_instance: AppQueue, state) => state.getWebSockets().length,
    );
    expect(open).toBe(3);
    await age(app, [15_500, 10_000, 16_000]);
    await runDurableObjectAlarm(appQueue(env, app));
    expect(await subscribers[0]!.closed).toEqual({ code: 4408, reason: "heartbeat timeout" });
    expect(await subscribers[2]!.closed).toEqual({ code: 4408, reason: "heartbeat timeout" });
    const remaining = await runInDurableObject(
      appQueue(env, app),
      (_instance: AppQueue, state) => state.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN).length,
    );
    expect(remaining).toBe(1);
  });

  it("a plain subscription carries task records only, as Qiniu's feed does; hello=1 or since= asks for the hello frame", async () => {
    const app = uniqueApp("plain");
    await createApp(app);
    const plain = await subscribe(app);
    const asked = await subscribe(app, "&hello=1");
    await finishParked(app);
    await vi.waitUntil(() => plain.results.length === 1 && asked.results.length === 1, { timeout: 5000 });
    expect(plain.hello).toEqual([]);
    expect(plain.texts).toEqual([]);
    expect(asked.hello).toEqual([{ type: "hello", app, seq: 0 }]);
  });

  it("resumes from since: replays later results in order, then goes live with no gap or duplicate", async () => {
    const app = uniqueApp("resume");
    await createApp(app);
    const watcher = await subscribe(app, "&hello=1");
    for (let i = 0; i < 3; i++) await finishParked(app);
    await vi.waitUntil(() => watcher.results.length === 3, { timeout: 5000 });
    const since = watcher.results[0]!.seq;
    // A result finishes while the resuming subscriber is being accepted and replayed.
    const [resumed] = await Promise.all([subscribe(app, `&since=${since}`), finishParked(app)]);
    await finishParked(app);
    await vi.waitUntil(() => resumed.results.length >= 4, { timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const seqs = resumed.results.map((result) => result.seq);
    expect(seqs).toEqual([since + 1, since + 2, since + 3, since + 4]);
    // The hello frame comes first and names the latest seq at accept time.
    expect(resumed.hello.length).toBe(1);
    expect([since + 2, since + 3]).toContain(resumed.hello[0]!.seq);
  });

  it("feed seqs of a re-created app continue above the old app's", async () => {
    const app = uniqueApp("seq");
    await createApp(app);
    for (let i = 0; i < 3; i++) await finishParked(app);
    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "DELETE" })).status).toBe(200);
    await createApp(app);
    const id = await submit(app, "/again", { body: "{}" });
    await waitForState(id, [10]);
    const seq = await sql(app)(
      (storage) => storage.exec<{ seq: number }>("SELECT seq FROM tasks WHERE id = ?", id).one().seq,
    );
    expect(seq).toBe(4);
  });

  it("refuses one subscriber over max_subscribers with 429 before the upgrade", async () => {
    const app = uniqueApp("limit");
    await createApp(app, { max_subscribers: 2 });
    await subscribe(app);
    await subscribe(app);
    const refused = await upgrade(app);
    expect(refused.status).toBe(429);
    expect(refused.webSocket).toBeNull();
    expect(await refused.json()).toMatchObject({ code: "too_many_subscribers" });
  });

  it.each([
    ["a binary frame", new Uint8Array([1, 2, 3]), 1003],
    ["an unknown text frame", "hello", 1008],
    ["an oversized frame", "x".repeat(5000), 1009],
  ])("closes on %s with a clear code", async (_name, frame, code) => {
    const app = uniqueApp("frames");
    await createApp(app);
    const subscriber = await subscribe(app);
    subscriber.ws.send(frame);
    expect((await subscriber.closed).code).toBe(code);
  });

  it("revoking a key closes the feeds it opened (4403), and only those", async () => {
    const app = uniqueApp("revoke");
    await createApp(app);
    const created = (await (
      await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["subscribe"] }) })
    ).json()) as { access_key: string; secret_key: string };
    const keys = { accessKey: created.access_key, secretKey: created.secret_key };
    const request = await signedRequest(`${CONTROL}/v1/tasks?app=${app}`, { headers: { upgrade: "websocket" }, keys });
    const response = await exports.default.fetch(request);
    expect(response.status).toBe(101);
    const byKey = attach(response.webSocket!);
    const byAdmin = await subscribe(app);
    // A client cannot claim to be another key's feed: the Worker sets who opened it.
    const spoofing = await signedRequest(`${CONTROL}/v1/tasks?app=${app}`, {
      headers: { upgrade: "websocket", "asyncgate-opened-by": created.access_key },
    });
    const spoofed = attach((await exports.default.fetch(spoofing)).webSocket!);
    const revoked = await call(`${CONTROL}/v1/apps/${app}/keys/${created.access_key}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect(await byKey.closed).toMatchObject({ code: 4403, reason: "access key revoked" });
    // The others still answer a heartbeat.
    for (const subscriber of [byAdmin, spoofed]) {
      subscriber.ws.send("OK");
      await vi.waitUntil(() => subscriber.texts.includes("OK"), { timeout: 5000 });
    }
  });

  it("the upgrade's 101 carries X-Reqid like every other response", async () => {
    const app = uniqueApp("reqid");
    await createApp(app);
    const response = await upgrade(app);
    expect(response.status).toBe(101);
    expect(response.headers.get("x-reqid")).toMatch(/^[0-9a-f]{16}$/);
    response.webSocket!.accept();
    response.webSocket!.close(1000);
  });

  it.each(["ok", " OK", "OK\n"])("closes on a heartbeat that is not exactly OK (%j) with 1008", async (frame) => {
    const app = uniqueApp("okish");
    await createApp(app);
    const subscriber = await subscribe(app);
    subscriber.ws.send(frame);
    expect((await subscriber.closed).code).toBe(1008);
    expect(subscriber.texts).toEqual([]);
  });

  it("accepts a signed, expiring URL instead of an Authorization header", async () => {
    const app = uniqueApp("url");
    await createApp(app);
    const base = `${CONTROL}/v1/tasks?app=${app}`;
    const deadline = Math.floor(Date.now() / 1000) + 60;
    const good = await upgrade(app, "", {
      unsigned: true,
      url: (await signUrl(base.replace("http:", "ws:"), deadline, env.ADMIN_ACCESS_KEY, env.ADMIN_SECRET_KEY)).replace(
        "ws:",
        "http:",
      ),
    });
    expect(good.status).toBe(101);
    attach(good.webSocket!).ws.close(1000);
    const expired = await upgrade(app, "", {
      unsigned: true,
      url: await signUrl(base, deadline - 120, env.ADMIN_ACCESS_KEY, env.ADMIN_SECRET_KEY),
    });
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({ code: "request_expired" });
    const forged = await upgrade(app, "", {
      unsigned: true,
      url: await signUrl(base, deadline, env.ADMIN_ACCESS_KEY, "wrong"),
    });
    expect(forged.status).toBe(401);
    const otherApp = await upgrade(app, "", {
      unsigned: true,
      url: (await signUrl(base, deadline, env.ADMIN_ACCESS_KEY, env.ADMIN_SECRET_KEY)).replace(app, uniqueApp("x")),
    });
    expect(otherApp.status).toBe(401);
  });

  it("400 for a bad since, 404 for an unknown app", async () => {
    const app = uniqueApp("bad");
    await createApp(app);
    expect((await upgrade(app, "&since=-1")).status).toBe(400);
    const unknown = await upgrade(uniqueApp("none"));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "app_not_found" });
  });
});

/** A task finished through the state machine with a `bytes`-long response body: a large result frame. */
async function finishLarge(app: string, bytes: number): Promise<string> {
  const stub = appQueue(env, app);
  const id = await parkedTask(app, "/large");
  const begun = await stub.begin(id);
  if (!begun.run) throw new Error(`begin: ${begun.reason}`);
  const body = new Uint8Array(bytes).fill(65);
  await stub.finish(id, begun.delivery.attempt, { kind: "response", status: 200, header: {}, body });
  return id;
}

const consecutive = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

describe("flow control", () => {
  it("closes a subscriber that never acknowledges with 4413 before its unacknowledged results pass 8 MiB, across hibernation", async () => {
    const app = uniqueApp("slow");
    await createApp(app);
    const subscriber = await subscribe(app);
    // 10 results of ~1.33 MB each (1 MB bodies in base64): 13 MB in all, over the bound. Halfway
    // the object hibernates: the count survives in the socket's attachment.
    for (let i = 0; i < 10 && !subscriber.closedWith; i++) {
      await finishLarge(app, 1_000_000);
      if (i === 2) await evictDurableObject(appQueue(env, app));
    }
    expect(await subscriber.closed).toEqual({
      code: 4413,
      reason: "subscriber too slow: acknowledge results with ACK <seq>",
    });
    // It got results up to the bound, in order, and not one frame more.
    expect(subscriber.results.length).toBeGreaterThan(3);
    expect(subscriber.results.length).toBeLessThan(10);
    expect(subscriber.resultBytes).toBeLessThanOrEqual(MAX_UNACKED_BYTES);
    expect(subscriber.resultBytes + subscriber.resultBytes / subscriber.results.length).toBeGreaterThan(
      MAX_UNACKED_BYTES,
    );
    expect(subscriber.results.map((result) => result.seq)).toEqual(consecutive(1, subscriber.results.length));
  });

  it("a subscriber that acknowledges keeps receiving past the bound", async () => {
    const app = uniqueApp("acks");
    await createApp(app);
    const subscriber = await subscribe(app);
    subscriber.autoAck = true;
    for (let i = 0; i < 10; i++) {
      await finishLarge(app, 1_000_000);
      await vi.waitUntil(() => subscriber.results.length === i + 1 || subscriber.closedWith, { timeout: 5000 });
    }
    expect(subscriber.closedWith).toBeNull();
    expect(subscriber.resultBytes).toBeGreaterThan(MAX_UNACKED_BYTES);
    expect(subscriber.results.map((result) => result.seq)).toEqual(consecutive(1, 10));
    // An acknowledgement is answered with nothing; the heartbeat still is.
    subscriber.ws.send("OK");
    await vi.waitUntil(() => subscriber.texts.length === 1, { timeout: 5000 });
  });

  it(
    "a since= replay pauses after the replay window until ACK, across hibernation, then completes with no gap or duplicate",
    { timeout: 20_000 },
    async () => {
      const app = uniqueApp("paced");
      await createApp(app);
      const count = 40;
      // 40 × 100 KB bodies: ~5.3 MB of frames, five replay windows.
      await sql(app)((storage) => insertResults(openStore(storage).tasks, storage, count, 100_000));
      const subscriber = await subscribe(app, "&since=0");
      await vi.waitUntil(() => subscriber.results.length > 0, { timeout: 5000 });
      // No acknowledgement: the replay stops after about one window (one page past it at most).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const paused = subscriber.results.length;
      expect(paused).toBeLessThan(count);
      expect(subscriber.resultBytes).toBeGreaterThanOrEqual(REPLAY_WINDOW_BYTES);
      expect(subscriber.resultBytes).toBeLessThan(2 * REPLAY_WINDOW_BYTES);
      // The object may hibernate while it waits; a live result meanwhile is held for the replay.
      await evictDurableObject(appQueue(env, app));
      await finishParked(app);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(subscriber.results.length).toBe(paused);
      subscriber.autoAck = true;
      subscriber.ws.send(`ACK ${subscriber.results.at(-1)!.seq}`);
      await vi.waitUntil(() => subscriber.results.length === count + 1, { timeout: 10_000 });
      await finishParked(app);
      await vi.waitUntil(() => subscriber.results.length === count + 2, { timeout: 5000 });
      expect(subscriber.closedWith).toBeNull();
      expect(subscriber.results.map((result) => result.seq)).toEqual(consecutive(1, count + 2));
    },
  );

  it("the SDK's subscribe() acknowledges as it consumes: a 5 MB replay arrives whole on one connection", async () => {
    const app = uniqueApp("sdk");
    await createApp(app);
    const count = 40;
    await sql(app)((storage) => insertResults(openStore(storage).tasks, storage, count, 100_000));
    const closes: string[] = [];
    const results = subscription(
      async (since) => {
        const response = await upgrade(app, since === null ? "&hello=1" : `&since=${since}`);
        if (!response.webSocket) throw new Error(`upgrade: ${response.status}`);
        response.webSocket.accept();
        return response.webSocket;
      },
      { since: 0, onEvent: (event) => event.type === "close" && closes.push(event.detail ?? "") },
    );
    const seqs: number[] = [];
    for (let i = 0; i < count; i++) seqs.push(((await results.next()).value as Result).seq);
    await results.return!();
    expect(seqs).toEqual(consecutive(1, count));
    expect(closes.filter((detail) => detail !== "1000 done")).toEqual([]); // never closed by the server
  });

  it.each(["ACK", "ACK ", "ACK x", "ACK -1", "ACK 1.0", "ACK 01", "ACK  1", "ack 1", "ACK 1 ", "ACK 99"])(
    "takes a well-formed ACK and closes on a malformed one or one of a result not sent (%j) with 1008",
    async (frame) => {
      const app = uniqueApp("badack");
      await createApp(app);
      const subscriber = await subscribe(app);
      await finishParked(app);
      await vi.waitUntil(() => subscriber.results.length === 1, { timeout: 5000 });
      subscriber.ws.send(`ACK ${subscriber.results[0]!.seq}`);
      subscriber.ws.send("OK");
      await vi.waitUntil(() => subscriber.texts.length === 1 || subscriber.closedWith, { timeout: 5000 });
      expect(subscriber.closedWith).toBeNull();
      subscriber.ws.send(frame);
      expect((await subscriber.closed).code).toBe(1008);
    },
  );
});
