// The SDK's behaviour beyond signing, against a scripted fetch: retry on 429/503 honouring
// Retry-After (each retry signed afresh), giving up after `retries`, submitJSON / notBefore /
// failFast headers, listTasks following cursors, body decoding, and a clear error without WebSocket.
import { describe, expect, it } from "vitest";
import { AsyncgateClient, AsyncgateError, TaskState, bodyJSON, bodyText, decodeBody } from "../../src/client/index";

type Script = (request: Request, index: number) => Response;

function scripted(script: Script) {
  const seen: Request[] = [];
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    seen.push(request);
    return script(request, seen.length - 1);
  }) as typeof globalThis.fetch;
  const client = new AsyncgateClient({
    endpoint: "https://async.example.com",
    accessKey: "ak",
    secretKey: "sk",
    fetch,
  });
  return { client, seen };
}

const json = (value: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json", ...headers } });

describe("AsyncgateClient", () => {
  it("retries 503 after its Retry-After and 429 with backoff, signing each attempt afresh", async () => {
    const { client, seen } = scripted((_request, index) =>
      index === 0
        ? json({ error: "busy", code: "unavailable" }, 503, { "retry-after": "1" })
        : index === 1
          ? json({ error: "slow down", code: "too_many" }, 429)
          : json({ id: "a".repeat(32) }, 202),
    );
    const started = Date.now();
    expect(await client.submit("shop", "/orders", { body: "{}" })).toEqual({ id: "a".repeat(32), deduplicated: false });
    expect(seen).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000 + 250 - 50);
    expect(new Set(seen.map((request) => request.headers.get("authorization"))).size).toBeGreaterThanOrEqual(2);
  });

  it("gives up after `retries` and throws the gateway's error", async () => {
    const { client, seen } = scripted(() => json({ error: "busy", code: "unavailable" }, 503, { "retry-after": "0" }));
    const error = await client.getTask("a".repeat(32)).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(AsyncgateError);
    expect(error).toMatchObject({ status: 503, code: "unavailable" });
    expect(seen).toHaveLength(4);
    const noRetries = new AsyncgateClient({
      endpoint: "https://async.example.com",
      accessKey: "ak",
      secretKey: "sk",
      retries: 0,
      fetch: (async () => json({ error: "x", code: "unavailable" }, 503)) as typeof fetch,
    });
    await expect(noRetries.getTask("a".repeat(32))).rejects.toMatchObject({ status: 503 });
  });

  it("submitJSON, notBefore and failFast set their headers; the app host is the endpoint's", async () => {
    const { client, seen } = scripted(() => json({ id: "b".repeat(32) }, 202));
    await client.submitJSON(
      "shop",
      "/orders",
      { n: 1 },
      { notBefore: new Date(1_900_000_000_000), failFast: true, deduplicationId: "o-1" },
    );
    const [request] = seen;
    expect(request!.url).toBe("https://shop.async.example.com/orders");
    expect(request!.headers.get("content-type")).toBe("application/json");
    // Signed: as X-Qiniu-Asyncgate-*, which the Qiniu token covers.
    expect(request!.headers.get("x-qiniu-asyncgate-not-before")).toBe("1900000000");
    expect(request!.headers.get("x-qiniu-asyncgate-fail-fast")).toBe("true");
    expect(request!.headers.get("x-qiniu-asyncgate-deduplication-id")).toBe("o-1");
    expect(await request!.text()).toBe('{"n":1}');
  });

  it("listTasks follows cursors until the last page; apps and keys call their routes", async () => {
    const pages = [
      { tasks: [{ id: "3" }, { id: "2" }], cursor: "2".padStart(32, "0") },
      { tasks: [{ id: "1" }], cursor: null },
    ];
    const { client, seen } = scripted((request) => {
      const url = new URL(request.url);
      if (url.pathname === "/v1/tasks") return json(pages[url.searchParams.has("cursor") ? 1 : 0]);
      return json({ ok: true, keys: [] });
    });
    const ids = [];
    for await (const task of client.listTasks("shop", { state: TaskState.Failed, pageSize: 2 })) ids.push(task.id);
    expect(ids).toEqual(["3", "2", "1"]);
    expect(new URL(seen[0]!.url).search).toBe("?app=shop&limit=2&state=11");
    expect(new URL(seen[1]!.url).searchParams.get("cursor")).toBe("2".padStart(32, "0"));
    await client.apps.pause("shop");
    await client.keys.list("shop");
    await client.retry("c".repeat(32));
    const routes = seen.slice(2).map((request) => `${request.method} ${new URL(request.url).pathname}`);
    expect(routes).toEqual(["PATCH /v1/apps/shop", "GET /v1/apps/shop/keys", `POST /v1/task/${"c".repeat(32)}/retry`]);
    expect(await seen[2]!.text()).toBe('{"state":"Paused"}');
  });

  it("decodes task bodies; subscribing without a WebSocket says how to get one", () => {
    const base64 = btoa('{"a":1}');
    expect(decodeBody(base64)).toEqual(new TextEncoder().encode('{"a":1}'));
    expect(bodyText(base64)).toBe('{"a":1}');
    expect(bodyJSON(base64)).toEqual({ a: 1 });
    const client = new AsyncgateClient({
      endpoint: "https://async.example.com",
      accessKey: "ak",
      secretKey: "sk",
      WebSocket: undefined as unknown as typeof WebSocket,
    });
    const original = globalThis.WebSocket;
    try {
      (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
      expect(() => client.subscribe("shop")).toThrow(/Node ≥ 22/);
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = original;
    }
  });
});
