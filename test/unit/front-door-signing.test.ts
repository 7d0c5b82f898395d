// Proves the FunctionGraph and Tencent CI front doors verify exactly what the vendors' official
// SDKs sign: vectors produced by huaweicloud-sdk-core's AKSKSigner and cos-nodejs-sdk-v5's
// getAuthorization (two also pinned as captured bytes), each accepted, and every single-field
// tamper refused.
import { BasicCredentials } from "@huaweicloud/huaweicloud-sdk-core";
import { AKSKSigner } from "@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner";
import COS from "cos-nodejs-sdk-v5";
import { describe, expect, it } from "vitest";
import { readCosSignature, verifyCosSignature, type CosSignature } from "../../src/auth/cos-signature";
import { readSdkSignature, verifySdkSignature } from "../../src/auth/huawei-sdk";

const encoder = new TextEncoder();

interface Received {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

const toRequest = (received: Received) => ({
  method: received.method,
  url: new URL(received.url),
  headers: new Headers(received.headers),
});

describe("FunctionGraph SDK-HMAC-SHA256", () => {
  const AK = "vector-ak";
  const SK = "vector-sk-0123456789";
  const credential = new BasicCredentials().withAk(AK).withSk(SK);
  const URN = "urn:fss:cn-north-4:proj1:function:default:demo:latest";

  /** What the SDK sends for an invocation: its signer's headers on the request line it builds. */
  function sdkRequest(options: { query?: Record<string, string>; data?: unknown; date?: string } = {}): Received {
    const data = options.data ?? { body: '{"k":"v"}' };
    const path = `/v2/proj1/fgs/functions/${URN}/invocations-async`;
    const search = options.query ? `?${new URLSearchParams(options.query)}` : "";
    const headers: Record<string, string> = { "Content-Type": "application/json", "X-Project-Id": "proj1" };
    if (options.date) headers["X-Sdk-Date"] = options.date;
    const signed = AKSKSigner.sign(
      {
        method: "POST",
        endpoint: `http://gw.example.com:8787${path}`,
        headers,
        queryParams: options.query ?? {},
        data,
      },
      credential,
    ) as Record<string, string>;
    const lower = Object.fromEntries(Object.entries(signed).map(([name, value]) => [name.toLowerCase(), value]));
    return {
      method: "POST",
      url: `http://gw.example.com:8787${path}${search}`,
      headers: lower,
      body: JSON.stringify(data),
    };
  }

  async function verifies(received: Received, secret = SK): Promise<boolean> {
    const signature = readSdkSignature(toRequest(received));
    if (typeof signature === "string") return false;
    return verifySdkSignature(signature, secret, encoder.encode(received.body));
  }

  it("accepts what the SDK signs: no query, a query, a unicode body", async () => {
    expect(await verifies(sdkRequest())).toBe(true);
    expect(await verifies(sdkRequest({ query: { b: "2", a: "x y/z" } }))).toBe(true);
    expect(await verifies(sdkRequest({ data: { msg: "你好 !*'()" } }))).toBe(true);
  });

  it("accepts a request captured from the SDK on the wire (pinned bytes)", async () => {
    const captured: Received = {
      method: "POST",
      url: "http://127.0.0.1:39683/v2/proj1/fgs/functions/urn:fss:cn-north-4:proj1:function:default:demo:latest/invocations-async",
      headers: {
        "content-type": "application/json",
        "x-project-id": "proj1",
        "x-sdk-date": "20261126T101549Z",
        host: "127.0.0.1:39683",
        authorization:
          "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=c8c7499a674192d237fe9177587e7b890a496727fb29efb0b80d11aee654e002",
      },
      body: '{"body":"{\\"k\\":\\"v\\"}"}',
    };
    expect(await verifies(captured, "SKEXAMPLE")).toBe(true);
    expect(await verifies(captured, "SKEXAMPLF")).toBe(false);
  });

  const tampers: [string, (r: Received) => Received][] = [
    ["method", (r) => ({ ...r, method: "PUT" })],
    ["function in the path", (r) => ({ ...r, url: r.url.replace(":demo:", ":other:") })],
    ["project in the path", (r) => ({ ...r, url: r.url.replace("/v2/proj1/", "/v2/proj2/") })],
    ["query (a parameter added)", (r) => ({ ...r, url: `${r.url}?x=1` })],
    ["body", (r) => ({ ...r, body: r.body.replace('"k', '"K') })],
    ["a signed header", (r) => ({ ...r, headers: { ...r.headers, "x-project-id": "proj2" } })],
    ["host", (r) => ({ ...r, headers: { ...r.headers, host: "evil.example.com:8787" } })],
    ["date", (r) => ({ ...r, headers: { ...r.headers, "x-sdk-date": "20300101T000000Z" } })],
    [
      "signed header list",
      (r) => ({
        ...r,
        headers: { ...r.headers, authorization: r.headers["authorization"]!.replace("content-type;", "") },
      }),
    ],
    [
      "signature",
      (r) => ({
        ...r,
        headers: {
          ...r.headers,
          authorization: r.headers["authorization"]!.replace(
            /Signature=(.)/,
            (_m, c: string) => `Signature=${c === "0" ? "1" : "0"}`,
          ),
        },
      }),
    ],
    [
      "payload hash (declared unsigned)",
      (r) => ({ ...r, headers: { ...r.headers, "x-sdk-content-sha256": "UNSIGNED-PAYLOAD" } }),
    ],
  ];

  it.each(tampers)("refuses a request with its %s changed", async (_field, tamper) => {
    const received = sdkRequest({ date: "20261126T101549Z" });
    expect(await verifies(received)).toBe(true);
    expect(await verifies(tamper(received))).toBe(false);
  });

  it("reads no signature without the date or with host unsigned", () => {
    const received = sdkRequest();
    const { "x-sdk-date": _date, ...withoutDate } = received.headers;
    expect(readSdkSignature(toRequest({ ...received, headers: withoutDate }))).toBe("date_missing");
    const hostless = received.headers["authorization"]!.replace("host;", "");
    expect(
      readSdkSignature(toRequest({ ...received, headers: { ...received.headers, authorization: hostless } })),
    ).toBe("host_not_signed");
    expect(
      readSdkSignature(toRequest({ ...received, headers: { ...received.headers, authorization: "Bearer x" } })),
    ).toBe("malformed");
  });

  it("the wrong secret key does not verify", async () => {
    expect(await verifies(sdkRequest(), `${SK}x`)).toBe(false);
  });
});

describe("Tencent COS request signing", () => {
  const SecretId = "vector-secret-id";
  const SecretKey = "vector-secret-key";
  const KeyTime = "1795688181;1795689081";

  /** What cos.request sends: the SDK's Authorization over the Key, query and signed headers. */
  function cosRequest(
    method: "GET" | "PUT",
    key: string,
    query: Record<string, string>,
    headers: Record<string, string>,
    body = "",
  ): Received {
    const authorization = COS.getAuthorization({
      SecretId,
      SecretKey,
      Method: method,
      Key: key,
      Query: query,
      Headers: headers,
      KeyTime,
    }) as string;
    const search = Object.keys(query).length ? `?${new URLSearchParams(query)}` : "";
    const lower = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
    return { method, url: `http://gw.example.com:8787/${key}${search}`, headers: { ...lower, authorization }, body };
  }

  const describeRequest = () =>
    cosRequest(
      "GET",
      "docqueue",
      { queueIds: "a,b", state: "Active", pageNumber: "", pageSize: "" },
      { Host: "gw.example.com:8787" },
    );
  const updateRequest = () => {
    const body = "<Request><Name>a</Name><QueueID>a</QueueID><State>Paused</State></Request>";
    return cosRequest(
      "PUT",
      "docqueue/a",
      {},
      { Host: "gw.example.com:8787", "Content-Type": "application/xml", "Content-Length": String(body.length) },
      body,
    );
  };

  async function verifies(received: Received, secret = SecretKey): Promise<boolean> {
    const signature = readCosSignature(toRequest(received));
    if (typeof signature === "string") return false;
    return verifyCosSignature(signature, secret);
  }

  it("accepts what the SDK signs: a describe with filters and an update with a body", async () => {
    expect(await verifies(describeRequest())).toBe(true);
    expect(await verifies(updateRequest())).toBe(true);
  });

  it("accepts a request captured from cos.request on the wire (pinned bytes)", async () => {
    const captured: Received = {
      method: "GET",
      url: "http://127.0.0.1:45633/docqueue?queueIds=&state=Active&pageNumber=&pageSize=",
      headers: {
        host: "127.0.0.1:45633",
        authorization:
          "q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1795688181;1795689081&q-key-time=1795688181;1795689081&q-header-list=host&q-url-param-list=pagenumber;pagesize;queueids;state&q-signature=6682e29a3ab5dd97723eec9ba32916ae704c36c5",
      },
      body: "",
    };
    expect(await verifies(captured, "SKEY")).toBe(true);
    expect(await verifies(captured, "SKEZ")).toBe(false);
  });

  const tampers: [string, () => Received, (r: Received) => Received][] = [
    ["method", describeRequest, (r) => ({ ...r, method: "DELETE" })],
    ["path", updateRequest, (r) => ({ ...r, url: r.url.replace("docqueue/a", "docqueue/b") })],
    ["query value", describeRequest, (r) => ({ ...r, url: r.url.replace("state=Active", "state=Paused") })],
    ["host", describeRequest, (r) => ({ ...r, headers: { ...r.headers, host: "evil.example.com:8787" } })],
    ["content length", updateRequest, (r) => ({ ...r, headers: { ...r.headers, "content-length": "1" } })],
    [
      "sign time",
      describeRequest,
      (r) => ({
        ...r,
        headers: {
          ...r.headers,
          authorization: r.headers["authorization"]!.replace("q-sign-time=1795688181", "q-sign-time=1795688182"),
        },
      }),
    ],
    [
      "key time",
      describeRequest,
      (r) => ({
        ...r,
        headers: {
          ...r.headers,
          authorization: r.headers["authorization"]!.replace("q-key-time=1795688181", "q-key-time=1795688182"),
        },
      }),
    ],
    [
      "signature",
      describeRequest,
      (r) => ({
        ...r,
        headers: {
          ...r.headers,
          authorization: r.headers["authorization"]!.replace(
            /q-signature=(.)/,
            (_m, c: string) => `q-signature=${c === "0" ? "1" : "0"}`,
          ),
        },
      }),
    ],
  ];

  it.each(tampers)("refuses a request with its %s changed", async (_field, make, tamper) => {
    const received = make();
    expect(await verifies(received)).toBe(true);
    expect(await verifies(tamper(received))).toBe(false);
  });

  it("refuses a signed query parameter given twice (signed with one value, read with the other)", () => {
    const received = describeRequest();
    const [name] = [...new URL(received.url).searchParams.keys()];
    expect(name).toBeDefined();
    expect(readCosSignature(toRequest({ ...received, url: `${received.url}&${name}=other` }))).toBe("param_repeated");
    const reordered = new URL(received.url);
    reordered.search = `?${name}=first&${reordered.search.slice(1)}`;
    expect(readCosSignature(toRequest({ ...received, url: reordered.toString() }))).toBe("param_repeated");
  });

  it("refuses unsigned query parameters and an unsigned host", () => {
    const received = describeRequest();
    expect(readCosSignature(toRequest({ ...received, url: `${received.url}&extra=1` }))).toBe("param_not_signed");
    const hostless = cosRequest("GET", "docqueue", {}, {});
    expect(readCosSignature(toRequest(hostless))).toBe("host_not_signed");
    expect(
      readCosSignature(
        toRequest({ ...received, headers: { ...received.headers, authorization: "q-sign-algorithm=md5" } }),
      ),
    ).toBe("malformed");
  });

  it("the wrong secret key does not verify", async () => {
    const signature = readCosSignature(toRequest(describeRequest())) as CosSignature;
    expect(await verifyCosSignature(signature, `${SecretKey}x`)).toBe(false);
  });
});
