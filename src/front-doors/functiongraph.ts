/**
 * Huawei FunctionGraph's asynchronous invocation (SPEC §9, seed 002) on the control host:
 *
 *   POST /v2/{project_id}/fgs/functions/{function_urn}/invocations-async   {…JSON…}
 *   → 202 {"request_id": "<task id>"}
 *
 * The URN's function name (`urn:fss:<region>:<project>:function:<package>:<name>[:<version>]`)
 * names the app; the JSON body becomes a task delivered (POST) to the app's `invoke_path`.
 * Signed with the Huawei Cloud SDK's AK/SK (`SDK-HMAC-SHA256`) by the admin pair or an app key
 * with `submit`. Errors take FunctionGraph's shape, `{"error_code": "FSS.0<status>", "error_msg"}`,
 * with the statuses seed 002 lists. The same apps, tasks and keys as the native API.
 */
import { MAX_BODY_BYTES_LIMIT } from "../config/app-config";
import { identifyCaller } from "../auth/authenticate";
import { callerFor } from "../control/callers";
import { readSdkProof } from "../auth/credentials";
import { readBody } from "../http/body";
import { configRules } from "../config/rules";
import {
  GatewayError,
  badRequest,
  describeError,
  jsonResponse,
  notFound,
  unwrap,
  type ErrorAnswer,
} from "../http/errors";
import { APP_NAME } from "../http/hosts";
import { submitToStore } from "../shards/submit-route";
import { parseSubmitOptions } from "../submit/options";
import { headerMap } from "../http/headers";
import { isRecordedHeader } from "../submit/record";
import type { RecordedRequest } from "../shared/types";

const INVOCATION_PATH = /^\/v2\/([^/]+)\/fgs\/functions\/([^/]+)\/invocations-async\/?$/;

/**
 * FunctionGraph's namespace, `/v2/{project}/fgs/functions…`, matched by its segments (its errors
 * answer in its own shape): Cloud Tasks (`/v2/projects/…/locations/…`) and QStash
 * (`/v2/publish/<url>`) share the `/v2/` prefix, and their paths may contain `/fgs/`.
 */
const NAMESPACE = /^\/v2\/[^/]+\/fgs\/functions(\/|$)/;
export const isFunctionGraphPath = (pathname: string) => NAMESPACE.test(pathname);

/** The function name of a FunctionGraph URN, or null when `urn` is not one. */
export function functionNameOf(urn: string): string | null {
  const parts = urn.split(":");
  if (parts.length < 7 || parts.length > 8 || parts[0] !== "urn" || parts[1] !== "fss" || parts[4] !== "function")
    return null;
  return parts[6] || null;
}

/** The statuses FunctionGraph answers: others map to the nearest of them. */
function functionGraphStatus(status: number): number {
  if ([400, 401, 403, 404, 500, 503].includes(status)) return status;
  if (status === 429) return 503;
  return status < 500 ? 400 : 500;
}

/** An error in FunctionGraph's shape; the gateway's own code leads the message. */
function functionGraphError(answer: ErrorAnswer, reqId: string): Response {
  const body = JSON.stringify({ error_code: `FSS.0${answer.status}`, error_msg: `${answer.code}: ${answer.message}` });
  const headers: Record<string, string> =
    answer.retryAfterSeconds === null ? {} : { "Retry-After": String(answer.retryAfterSeconds) };
  return jsonResponse(body, functionGraphStatus(answer.status), reqId, headers);
}

/** Huawei's SDKs read the request id (`e.getRequestId()`) from X-Request-Id. */
function withRequestId(response: Response, reqId: string): Response {
  response.headers.set("X-Request-Id", reqId);
  return response;
}

/** Headers of the invocation that are its credentials, not part of the event. */
const isCredentialHeader = (name: string) =>
  name.startsWith("x-sdk-") || name === "x-project-id" || name === "x-auth-token" || name === "x-security-token";

export async function handleFunctionGraph(request: Request, env: Env, reqId: string): Promise<Response> {
  try {
    return withRequestId(await invokeAsync(request, env, reqId), reqId);
  } catch (error) {
    return withRequestId(functionGraphError(describeError(error, reqId, "functiongraph"), reqId), reqId);
  }
}

async function invokeAsync(request: Request, env: Env, reqId: string): Promise<Response> {
  const url = new URL(request.url);
  const match = INVOCATION_PATH.exec(url.pathname);
  if (!match) throw notFound("not_found", `no route: ${request.method} ${url.pathname}`);
  if (request.method !== "POST")
    throw new GatewayError(405, "method_not_allowed", `${request.method} is not allowed on ${url.pathname}`);
  const body = await readBody(request, MAX_BODY_BYTES_LIMIT);
  const now = Date.now();
  const proof = readSdkProof(request, now);
  let urn: string;
  try {
    urn = decodeURIComponent(match[2]!);
  } catch {
    throw badRequest("invalid_urn", "the function URN is not valid percent-encoding");
  }
  const app = functionNameOf(urn);
  if (app === null)
    throw badRequest(
      "invalid_urn",
      "expected a function URN: urn:fss:<region>:<project>:function:<package>:<name>[:<version>]",
    );
  if (!APP_NAME.test(app)) throw notFound("app_not_found", `no such function: ${app}`);
  const caller = await callerFor({ env, caller: await identifyCaller(proof, body, env, true), body }, app, "submit");
  try {
    JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw badRequest("invalid_json", "an invocation's body must be JSON");
  }
  const host = request.headers.get("host") ?? url.host;
  // The Huawei signature covers the headers its SignedHeaders names; an X-Auth-Token covers none.
  const signed = proof.kind === "sdk-hmac-sha256" ? proof.signature.signedHeaders : [];
  const coverage = {
    covered: (name: string) => signed.includes(name),
    required: env.REQUIRE_SIGNED_CONTROL_HEADERS === "true",
  };
  const options = parseSubmitOptions(request.headers, now, configRules(env, host), coverage);
  const header = headerMap(request.headers, (name) => isRecordedHeader(name) && !isCredentialHeader(name));
  // The path is the app's invoke_path, which its object fills in.
  const recorded: RecordedRequest = {
    method: "POST",
    path: "/",
    raw_query: "",
    header: { ...header, "Content-Type": ["application/json"] },
    body,
  };
  const { id } = unwrap(
    await submitToStore(env, app, { caller, reqId, request: recorded, options, toInvokePath: true }),
  );
  return jsonResponse(JSON.stringify({ request_id: id }), 202, reqId);
}
