// The seeds' front doors (FunctionGraph, Tencent CI) meet bad input with their own error shapes
// and the right status, never a 500, and never create or change anything. Requests are signed
// with our own signers, which test/unit/front-door-signing.test.ts proves equal to the SDKs'.
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { cosSignature, readCosSignature } from "../../src/auth/cos-signature";
import { readSdkSignature, sdkSignature } from "../../src/auth/huawei-sdk";
import { formatQiniuDate } from "../../src/auth/qiniu";
import { CONTROL, call, createApp, uniqueApp } from "./helpers";

const ADMIN = () => ({ accessKey: env.ADMIN_ACCESS_KEY, secretKey: env.ADMIN_SECRET_KEY });
const encoder = new TextEncoder();

interface FrontDoorInit {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  keys?: { accessKey: string; secretKey: string };
}

/** A FunctionGraph request signed as the Huawei SDK signs (content-type, host, x-sdk-date). */
async function invocation(url: string, init: FrontDoorInit & { dateMs?: number } = {}): Promise<Response> {
  const keys = init.keys ?? ADMIN();
  const body = encoder.encode(init.body ?? '{"k":"v"}');
  const headers = new Headers({
    "content-type": "application/json",
    host: new URL(url).host,
    "x-sdk-date": formatQiniuDate(init.dateMs ?? Date.now()),
    ...init.headers,
  });
  const method = init.method ?? "POST";
  headers.set(
    "authorization",
    `SDK-HMAC-SHA256 Access=${keys.accessKey}, SignedHeaders=content-type;host;x-sdk-date, Signature=${"0".repeat(64)}`,
  );
  const read = readSdkSignature({ method, url: new URL(url), headers });
  if (typeof read !== "string") {
    const signature = await sdkSignature(keys.secretKey, read.date, read.canonicalHead, body);
    headers.set("authorization", headers.get("authorization")!.replace("0".repeat(64), signature));
  }
  return exports.default.fetch(new Request(url, { method, headers, body: method === "GET" ? undefined : body }));
}

/** A Tencent CI request signed as cos-nodejs-sdk-v5 signs (host, every query parameter). */
async function docqueue(url: string, init: FrontDoorInit & { signTime?: string } = {}): Promise<Response> {
  const keys = init.keys ?? ADMIN();
  const method = init.method ?? "GET";
  const parsed = new URL(url);
  const headers = new Headers({ host: parsed.host, ...init.headers });
  const nowS = Math.floor(Date.now() / 1000);
  const time = init.signTime ?? `${nowS - 1};${nowS + 900}`;
  const params = [...new Set([...parsed.searchParams.keys()].map((name) => name.toLowerCase()))].sort().join(";");
  headers.set(
    "authorization",
    `q-sign-algorithm=sha1&q-ak=${keys.accessKey}&q-sign-time=${time}&q-key-time=${time}&q-header-list=host&q-url-param-list=${params}&q-signature=${"0".repeat(40)}`,
  );
  const read = readCosSignature({ method, url: parsed, headers });
  if (typeof read !== "string") {
    const signature = await cosSignature(keys.secretKey, read.keyTime, read.signTimeText, read.httpString);
    headers.set("authorization", headers.get("authorization")!.replace("0".repeat(40), signature));
  }
  return exports.default.fetch(new Request(url, { method, headers, body: init.body }));
}

const urn = (fn: string) => `urn:fss:cn-north-4:p1:function:default:${fn}:latest`;
const invokeUrl = (fn: string) => `${CONTROL}/v2/p1/fgs/functions/${urn(fn)}/invocations-async`;

async function fgError(response: Response): Promise<{ status: number; error_code: string; error_msg: string }> {
  expect(response.headers.get("content-type")).toBe("application/json");
  const body = (await response.json()) as { error_code: string; error_msg: string };
  return { status: response.status, ...body };
}

async function cosError(response: Response): Promise<{ status: number; code: string }> {
  expect(response.headers.get("content-type")).toBe("application/xml");
  const text = await response.text();
  const code = /<Error><Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `no error code in ${text}`;
  return { status: response.status, code };
}

async function taskCount(app: string): Promise<number> {
  const response = await call(`${CONTROL}/v1/tasks?app=${app}&limit=100`);
  return ((await response.json()) as { tasks: unknown[] }).tasks.length;
}

describe("FunctionGraph front door: bad input", () => {
  const app = uniqueApp("fg");
  beforeAll(async () => {
    await createApp(app, { invoke_path: "/invoke" });
  });

  it("accepts a signed invocation (the baseline every case below departs from)", async () => {
    const response = await invocation(invokeUrl(app));
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ request_id: expect.stringMatching(/^[0-9a-z]+$/) });
  });

  it.each([
    ["a body that is not JSON", { body: "not json" }, 400, "FSS.0400"],
    ["an X-Sdk-Date an hour old", { dateMs: Date.now() - 3_600_000 }, 401, "FSS.0401"],
    ["a wrong secret", { keys: { accessKey: "admin", secretKey: "wrong" } }, 401, "FSS.0401"],
    ["a GET", { method: "GET" }, 400, "FSS.0405"],
  ] as const)("%s is refused in FunctionGraph's shape, and nothing is enqueued", async (_case, init, status, code) => {
    const before = await taskCount(app);
    const keys = "keys" in init ? { accessKey: env.ADMIN_ACCESS_KEY, secretKey: init.keys.secretKey } : undefined;
    const error = await fgError(await invocation(invokeUrl(app), { ...init, ...(keys ? { keys } : {}) }));
    expect(error).toMatchObject({ status, error_code: code });
    expect(await taskCount(app)).toBe(before);
  });

  it("malformed URNs and paths are 400 or 404, never 500", async () => {
    expect(await fgError(await invocation(`${CONTROL}/v2/p1/fgs/functions/not-a-urn/invocations-async`))).toMatchObject(
      { status: 400, error_code: "FSS.0400" },
    );
    expect(await fgError(await invocation(`${CONTROL}/v2/p1/fgs/functions/%E0%A4/invocations-async`))).toMatchObject({
      status: 400,
    });
    expect(await fgError(await invocation(invokeUrl("Upper_Case")))).toMatchObject({
      status: 404,
      error_code: "FSS.0404",
    });
    expect(await fgError(await invocation(`${CONTROL}/v2/p1/fgs/functions`))).toMatchObject({ status: 404 });
  });

  it("a body over the largest task is 400 FSS.0413", async () => {
    const error = await fgError(
      await invocation(invokeUrl(app), { body: JSON.stringify({ pad: "x".repeat(1_900_000) }) }),
    );
    expect(error).toMatchObject({ status: 400, error_code: "FSS.0413" });
  });

  it("garbage Authorization values are 401 in FunctionGraph's shape", async () => {
    for (const authorization of [
      "SDK-HMAC-SHA256",
      "SDK-HMAC-SHA256 Access=a, SignedHeaders=x, Signature=zz",
      `Qiniu a:b`,
      "x".repeat(2000),
    ]) {
      const response = await exports.default.fetch(
        new Request(invokeUrl(app), {
          method: "POST",
          headers: { authorization, "x-sdk-date": formatQiniuDate(Date.now()), "content-type": "application/json" },
          body: "{}",
        }),
      );
      expect(await fgError(response)).toMatchObject({ status: 401, error_code: "FSS.0401" });
    }
  });

  it("an invoke_path that is not a path is refused at PATCH", async () => {
    for (const invoke_path of ["relative", "//host/x", "/with space", "/frag#x", 7]) {
      const response = await call(`${CONTROL}/v1/apps/${app}`, {
        method: "PATCH",
        body: JSON.stringify({ invoke_path }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe("invalid_invoke_path");
    }
  });
});

describe("Tencent CI front door: bad input", () => {
  const app = uniqueApp("ci");
  beforeAll(async () => {
    await createApp(app);
  });

  const update = (xml: string) =>
    docqueue(`${CONTROL}/docqueue/${app}`, {
      method: "PUT",
      body: xml,
      headers: { "content-type": "application/xml" },
    });
  const stateOf = async () => ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { state: string }).state;

  it("answers a signed describe (the baseline every case below departs from)", async () => {
    const response = await docqueue(`${CONTROL}/docqueue?queueIds=${app}`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain(`<QueueId>${app}</QueueId>`);
  });

  it.each([
    ["pageSize over 100", "?pageSize=1000", 400, "InvalidArgument"],
    ["an unknown state", "?state=Sleeping", 400, "InvalidArgument"],
    ["queueIds that are no app names", "?queueIds=Bad_Name", 400, "InvalidArgument"],
  ])("a describe with %s is a 400 XML error", async (_case, query, status, code) => {
    expect(await cosError(await docqueue(`${CONTROL}/docqueue${query}`))).toEqual({ status, code });
  });

  it("an expired or far-future signature is 403 RequestTimeTooSkewed", async () => {
    const nowS = Math.floor(Date.now() / 1000);
    expect(
      await cosError(await docqueue(`${CONTROL}/docqueue`, { signTime: `${nowS - 7200};${nowS - 3600}` })),
    ).toEqual({ status: 403, code: "RequestTimeTooSkewed" });
    expect(await cosError(await docqueue(`${CONTROL}/docqueue`, { signTime: `${nowS};${nowS + 3 * 86_400}` }))).toEqual(
      { status: 403, code: "RequestTimeTooSkewed" },
    );
  });

  it("unsigned requests and other methods are refused in Tencent's shape", async () => {
    expect(await cosError(await exports.default.fetch(new Request(`${CONTROL}/docqueue`)))).toEqual({
      status: 403,
      code: "AccessDenied",
    });
    expect(await cosError(await docqueue(`${CONTROL}/docqueue`, { method: "POST", body: "<Request/>" }))).toEqual({
      status: 405,
      code: "MethodNotAllowed",
    });
    expect(
      await cosError(await docqueue(`${CONTROL}/docqueue/%E0%A4`, { method: "PUT", body: "<Request/>" })),
    ).toMatchObject({ status: 403 });
  });

  it.each([
    ["malformed XML", "<Request><State>Paused</Request>", "MalformedXML"],
    ["no Request element", "<Other/>", "InvalidArgument"],
    ["an unknown element", "<Request><State>Paused</State><Colour>red</Colour></Request>", "InvalidArgument"],
    ["a rename", "<Request><Name>renamed</Name><State>Paused</State></Request>", "InvalidArgument"],
    ["another queue's id", "<Request><QueueID>other</QueueID><State>Paused</State></Request>", "InvalidArgument"],
    [
      "a notify type other than Url",
      "<Request><State>Paused</State><NotifyConfig><Type>TDMQ</Type></NotifyConfig></Request>",
      "InvalidArgument",
    ],
    [
      "notifications on without a Url",
      "<Request><State>Paused</State><NotifyConfig><State>On</State></NotifyConfig></Request>",
      "InvalidArgument",
    ],
    ["a nested State", "<Request><State><A>1</A></State></Request>", "InvalidArgument"],
    [
      // Entities a document declares are never expanded: a reference to one is malformed XML.
      "an entity expansion",
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Request><State>&c;</State></Request>',
      "MalformedXML",
    ],
  ])("an update with %s is a 400 XML error and changes nothing", async (_case, xml, code) => {
    expect(await cosError(await update(xml))).toEqual({ status: 400, code });
    expect(await stateOf()).toBe("Active");
  });

  it("an update of an unknown queue is 404 NoSuchResource", async () => {
    const response = await docqueue(`${CONTROL}/docqueue/no-such-queue`, {
      method: "PUT",
      body: "<Request><State>Paused</State></Request>",
    });
    expect(await cosError(response)).toEqual({ status: 404, code: "NoSuchResource" });
  });
});
