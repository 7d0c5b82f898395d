// Proves our Qiniu access-token code agrees with the official `qiniu` npm SDK (generateAccessTokenV2).
import qiniu from "qiniu";
import { describe, expect, it } from "vitest";
import {
  parseAuthorization,
  parseQiniuDate,
  qiniuAuthorization,
  verifySignature,
  type SignedParts,
} from "../../src/auth/qiniu";

const AK = "vector-ak";
const SK = "vector-sk-0123456789";
const mac = new qiniu.auth.digest.Mac(AK, SK);
const encoder = new TextEncoder();

interface Vector {
  name: string;
  url: string;
  method: string;
  contentType?: string;
  body?: string;
  headers?: Record<string, string>;
}

const vectors: Vector[] = [
  {
    name: "GET without query",
    url: "http://async.example.com/v1/task/01aa8888888888888888888888888888",
    method: "GET",
  },
  {
    name: "POST JSON",
    url: "http://demo.async.example.com/jobs?x=1&y=2",
    method: "POST",
    contentType: "application/json",
    body: '{"a":1}',
  },
  {
    name: "form body",
    url: "http://demo.async.example.com/f",
    method: "PUT",
    contentType: "application/x-www-form-urlencoded",
    body: "a=1&b=2",
  },
  {
    name: "octet-stream body is not signed",
    url: "http://demo.async.example.com/bin",
    method: "POST",
    contentType: "application/octet-stream",
    body: "raw",
  },
  {
    name: "X-Qiniu headers, sorted",
    url: "http://async.example.com/v1/apps",
    method: "POST",
    contentType: "application/json",
    body: "{}",
    headers: { "x-qiniu-b": "2", "X-Qiniu-A": "1", "X-Other": "no" },
  },
  { name: "unicode path", url: "http://demo.async.example.com/%E4%BD%A0%E5%A5%BD", method: "DELETE" },
  { name: "with a port", url: "http://localhost:8787/v1/apps?page=2", method: "GET" },
];

function partsOf(vector: Vector, host: string): SignedParts {
  const url = new URL(vector.url);
  return {
    method: vector.method,
    pathAndQuery: url.pathname + url.search,
    host,
    contentType: vector.contentType ?? null,
    headers: Object.entries(vector.headers ?? {}),
    body: encoder.encode(vector.body ?? ""),
  };
}

describe("Qiniu access token", () => {
  it.each(vectors)("SDK token verifies: $name", async (vector) => {
    const token = qiniu.util.generateAccessTokenV2(
      mac,
      vector.url,
      vector.method,
      vector.contentType ?? "",
      vector.body,
      vector.headers ?? {},
    );
    const parsed = parseAuthorization(token);
    expect(parsed?.accessKey).toBe(AK);
    // The server checks against the Host header as received: host[:port].
    expect(await verifySignature(partsOf(vector, new URL(vector.url).host), SK, parsed!.sign)).toBe(true);
    expect(await verifySignature(partsOf(vector, new URL(vector.url).host), "wrong-secret", parsed!.sign)).toBe(false);
  });

  it.each(vectors.filter((vector) => !new URL(vector.url).port))(
    "we sign exactly as the SDK: $name",
    async (vector) => {
      const sdk = qiniu.util.generateAccessTokenV2(
        mac,
        vector.url,
        vector.method,
        vector.contentType ?? "",
        vector.body,
        vector.headers ?? {},
      );
      expect(await qiniuAuthorization(AK, SK, partsOf(vector, new URL(vector.url).host))).toBe(sdk);
    },
  );

  it("a tampered body, path or host fails", async () => {
    const vector = vectors[1]!;
    const { sign } = parseAuthorization(
      qiniu.util.generateAccessTokenV2(mac, vector.url, vector.method, vector.contentType ?? "", vector.body, {}),
    )!;
    const host = new URL(vector.url).host;
    expect(await verifySignature({ ...partsOf(vector, host), body: encoder.encode('{"a":2}') }, SK, sign)).toBe(false);
    expect(await verifySignature({ ...partsOf(vector, host), pathAndQuery: "/jobs?x=1" }, SK, sign)).toBe(false);
    expect(await verifySignature(partsOf(vector, "evil.example.com"), SK, sign)).toBe(false);
  });

  it("parses only well-formed Authorization headers", () => {
    expect(parseAuthorization("Qiniu ak:c2lnbg==")).toEqual({ accessKey: "ak", sign: "c2lnbg==" });
    expect(parseAuthorization("Bearer x")).toBeNull();
    expect(parseAuthorization("Qiniu ak")).toBeNull();
    expect(parseAuthorization(null)).toBeNull();
  });

  it("parses X-Qiniu-Date", () => {
    expect(parseQiniuDate("20261125T150405Z")).toBe(Date.UTC(2026, 10, 25, 15, 4, 5));
    expect(parseQiniuDate("2026-11-25")).toBeNull();
  });
});
