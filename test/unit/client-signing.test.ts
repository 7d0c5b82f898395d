// Proves the SDK signs every request with a fresh X-Qiniu-Date, inside the signature.
import { describe, expect, it } from "vitest";
import { AsyncgateClient } from "../../src/client/index";
import { parseAuthorization, parseQiniuDate, verifySignature } from "../../src/auth/qiniu";

describe("AsyncgateClient signing", () => {
  it("signs X-Qiniu-Date on submissions and control requests", async () => {
    const seen: Request[] = [];
    const fakeFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      seen.push(new Request(input, init));
      return new Response(JSON.stringify({ id: "0".repeat(32), tasks: [], cursor: null }), { status: 202 });
    }) as typeof fetch;
    const client = new AsyncgateClient({
      endpoint: "https://async.example.com",
      accessKey: "ak",
      secretKey: "sk",
      fetch: fakeFetch,
    });
    await client.submit("shop", "/orders", { body: '{"n":1}' });
    await client.request("GET", "/v1/tasks?app=shop");
    expect(seen.length).toBe(2);
    for (const request of seen) {
      const date = request.headers.get("x-qiniu-date");
      expect(date).toMatch(/^\d{8}T\d{6}Z$/);
      expect(Math.abs(parseQiniuDate(date!)! - Date.now())).toBeLessThan(5_000);
      const token = parseAuthorization(request.headers.get("authorization"))!;
      const url = new URL(request.url);
      const parts = {
        method: request.method,
        pathAndQuery: url.pathname + url.search,
        host: url.host,
        contentType: request.headers.get("content-type"),
        headers: request.headers,
        body: new Uint8Array(await request.arrayBuffer()),
      };
      expect(await verifySignature(parts, "sk", token.sign)).toBe(true);
      // The date is inside the signature: another date does not verify.
      const moved = new Headers(request.headers);
      moved.set("x-qiniu-date", "20200101T000000Z");
      expect(await verifySignature({ ...parts, headers: moved }, "sk", token.sign)).toBe(false);
    }
  });
});
