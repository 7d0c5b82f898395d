/**
 * Tencent Cloud CI's queue API (SPEC §9, seed 001) on the control host, over the same apps:
 *
 *   GET /docqueue?queueIds=a,b&state=Active&pageNumber=1&pageSize=10   describe queues
 *   PUT /docqueue/<queueId>   <Request><Name/><QueueID/><State/><NotifyConfig>…</NotifyConfig></Request>
 *
 * A queue is an app; its `QueueId` is the app's name (what `GET /v1/apps?ids=` takes), so it
 * is stable for as long as the app lives. Requests are signed as COS signs them (the official
 * cos-nodejs-sdk-v5 `cos.request` works unchanged) by the admin pair or an app key with
 * `manage`; answers and errors are Tencent's XML (`<Response>`, `<Error><Code>…`).
 */
import type { AppConfig } from "../config/app-config";
import { identifyCaller } from "../auth/authenticate";
import { readCosProof } from "../auth/credentials";
import { parseAppIds, parseAppState, updateApp, visibleApps, type AppFilter } from "../control/apps";
import { positiveInteger } from "../control/context";
import { readBody } from "../http/body";
import { configRules } from "../config/rules";
import { GatewayError, badRequest, describeError, notFound, type ErrorAnswer } from "../http/errors";
import { APP_NAME } from "../http/hosts";
import type { RegisteredApp } from "../registry/app-registry";
import { readXml, writeXml, type XmlWritable } from "./xml";

/** Queue updates are small XML documents. */
const MAX_REQUEST_BYTES = 64 * 1024;

export const isTencentCiPath = (pathname: string) => pathname === "/docqueue" || pathname.startsWith("/docqueue/");

function xmlResponse(document: Record<string, XmlWritable>, status: number, reqId: string): Response {
  return new Response(writeXml(document), {
    status,
    headers: { "Content-Type": "application/xml", "X-Reqid": reqId, "x-ci-request-id": reqId },
  });
}

/** COS answers every authentication failure with 403 and a code saying which. */
function cosError(status: number, code: string): { status: number; code: string } {
  if (status === 401) {
    if (code === "bad_token") return { status: 403, code: "SignatureDoesNotMatch" };
    if (code === "request_expired" || code === "token_deadline_too_far")
      return { status: 403, code: "RequestTimeTooSkewed" };
    return { status: 403, code: "AccessDenied" };
  }
  const byStatus: Record<number, string> = {
    400: code === "invalid_xml" ? "MalformedXML" : "InvalidArgument",
    403: "AccessDenied",
    404: "NoSuchResource",
    405: "MethodNotAllowed",
    413: "EntityTooLarge",
    503: "ServiceUnavailable",
  };
  return { status, code: byStatus[status] ?? "InternalError" };
}

/** An error as Tencent's XML `<Error>`; the gateway's own code leads the message. */
function tencentError(answer: ErrorAnswer, reqId: string): Response {
  const mapped = cosError(answer.status, answer.code);
  const document = { Error: { Code: mapped.code, Message: `${answer.code}: ${answer.message}`, RequestId: reqId } };
  const response = xmlResponse(document, mapped.status, reqId);
  if (answer.retryAfterSeconds !== null) response.headers.set("Retry-After", String(answer.retryAfterSeconds));
  return response;
}

export async function handleTencentCi(request: Request, env: Env, reqId: string): Promise<Response> {
  try {
    const url = new URL(request.url);
    if (url.pathname === "/docqueue") {
      if (request.method !== "GET")
        throw new GatewayError(405, "method_not_allowed", `${request.method} is not allowed on /docqueue`);
      return await describeQueues(request, env, reqId);
    }
    if (request.method !== "PUT")
      throw new GatewayError(405, "method_not_allowed", `${request.method} is not allowed on ${url.pathname}`);
    return await updateQueue(request, env, reqId);
  } catch (error) {
    return tencentError(describeError(error, reqId, "tencent-ci"), reqId);
  }
}

/** Unix ms → Tencent's `2006-01-02T15:04:05+0000`. */
export function tencentTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}+0000`;
}

/** An app as a Tencent queue. */
function queueOf(app: RegisteredApp) {
  const { config } = app;
  return {
    QueueId: config.name,
    Name: config.name,
    State: config.state,
    NotifyConfig: {
      Url: config.notify.url ?? "",
      Type: "Url",
      Event: config.notify.events.join(","),
      State: config.notify.state,
    },
    MaxConcurrent: config.rate_limits.max_concurrent_dispatches ?? 0,
    CreateTime: tencentTime(app.createdMs),
    UpdateTime: tencentTime(app.updatedMs),
  };
}

async function authenticated(request: Request, env: Env, body: Uint8Array) {
  const proof = readCosProof(request, Date.now());
  return {
    env,
    body,
    caller: await identifyCaller(proof, body, env),
    rules: configRules(env, request.headers.get("host") ?? new URL(request.url).host),
  };
}

async function describeQueues(request: Request, env: Env, reqId: string): Promise<Response> {
  const context = await authenticated(request, env, new Uint8Array(0));
  const query = new URL(request.url).searchParams;
  const filter: AppFilter = {
    names: parseAppIds(query.get("queueIds"), "queueIds"),
    state: parseAppState(query.get("state")),
    page: positiveInteger(query.get("pageNumber"), 1, 1_000_000, "pageNumber"),
    pageSize: positiveInteger(query.get("pageSize"), 10, 100, "pageSize"),
  };
  const page = await visibleApps(context, filter);
  // Ids asked for that name no queue this caller can see (unknown, or another app's).
  const found = new Set(page.found ?? []);
  const missing = filter.names ? filter.names.filter((name) => !found.has(name)) : [];
  const response = {
    Response: {
      RequestId: reqId,
      TotalCount: page.total,
      PageNumber: filter.page,
      PageSize: filter.pageSize,
      QueueList: page.apps.map(queueOf),
      ...(missing.length > 0 ? { NonExistPIDs: missing } : {}),
    },
  };
  return xmlResponse(response, 200, reqId);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function text(value: unknown, field: string): string {
  if (value === undefined) return "";
  if (typeof value !== "string") throw badRequest("invalid_request", `${field} must be a text element`);
  return value;
}

/** A Tencent `<Request>` for queue `name` as a PATCH of its app's config. */
export function queuePatch(
  document: unknown,
  name: string,
  current: Pick<AppConfig, "notify">,
): Record<string, unknown> {
  if (!isRecord(document) || !isRecord(document["Request"]))
    throw badRequest("invalid_request", "expected <Request>…</Request>");
  const request = document["Request"];
  const patch: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(request)) {
    switch (field) {
      case "Name":
        if (text(value, "Name") !== name)
          throw badRequest("invalid_name", `a queue cannot be renamed: Name must be ${name}`);
        break;
      case "QueueID":
        if (text(value, "QueueID") !== name)
          throw badRequest("invalid_queue_id", `QueueID must be the queue in the path (${name})`);
        break;
      case "State":
        patch["state"] = text(value, "State");
        break;
      case "NotifyConfig":
        patch["notify"] = notifyPatch(value === "" ? {} : value, current);
        break;
      default:
        throw badRequest("unknown_field", `unknown element: Request.${field}`);
    }
  }
  if (patch["state"] === undefined) throw badRequest("invalid_state", "State (Active or Paused) is required");
  return patch;
}

function notifyPatch(value: unknown, current: Pick<AppConfig, "notify">): Record<string, unknown> {
  if (!isRecord(value))
    throw badRequest("invalid_notify", "NotifyConfig must hold Url, Type, Event and State elements");
  const notify: Record<string, unknown> = {};
  for (const [field, item] of Object.entries(value)) {
    switch (field) {
      case "Url": {
        const url = text(item, "NotifyConfig.Url");
        notify["url"] = url === "" ? null : url;
        break;
      }
      case "Type":
        if (text(item, "NotifyConfig.Type") !== "Url")
          throw badRequest("invalid_notify", "NotifyConfig.Type must be Url (callbacks are HTTP)");
        break;
      case "Event":
        notify["events"] = text(item, "NotifyConfig.Event")
          .split(",")
          .map((event) => event.trim());
        break;
      case "State":
        notify["state"] = text(item, "NotifyConfig.State");
        break;
      default:
        throw badRequest("unknown_field", `unknown element: NotifyConfig.${field}`);
    }
  }
  // An Url cleared while notifications stay on keeps no target: say so rather than guess.
  if (notify["url"] === null && (notify["state"] ?? current.notify.state) === "On") {
    throw badRequest("invalid_notify", "NotifyConfig.Url is required when NotifyConfig.State is On");
  }
  return notify;
}

async function updateQueue(request: Request, env: Env, reqId: string): Promise<Response> {
  const encoded = new URL(request.url).pathname.slice("/docqueue/".length);
  const queueId = URL.canParse(`http://x/${encoded}`) && /^[A-Za-z0-9._~-]*$/.test(encoded) ? encoded : "";
  const body = await readBody(request, MAX_REQUEST_BYTES);
  const context = await authenticated(request, env, body);
  if (!APP_NAME.test(queueId)) throw notFound("app_not_found", `no such queue: ${queueId}`);
  const xml = new TextDecoder().decode(body);
  const document = readXml(xml);
  if (document === null) throw badRequest("invalid_xml", "the body is not well-formed XML");
  const visible = await visibleApps(context, { names: [queueId], state: null, page: 1, pageSize: 1 });
  const current = visible.apps[0];
  if (!current) throw notFound("app_not_found", `no such queue: ${queueId}`);
  const updated = await updateApp(context, queueId, queuePatch(document, queueId, current.config));
  return xmlResponse({ Response: { RequestId: reqId, Queue: [queueOf(updated)] } }, 200, reqId);
}
