/**
 * Submission (SPEC §3): any request to `<app><suffix>` becomes a task. Nothing slow
 * happens here: record, authenticate, one RPC to the app's object, answer.
 */
import { parseSubmitOptions, qiniuCoverage } from "./options";
import { recordHeaders } from "./record";
import { MAX_BODY_BYTES_LIMIT } from "../config/app-config";
import { identifyCaller } from "../auth/authenticate";
import { callerFor } from "../control/callers";
import { readProof } from "../auth/credentials";
import { withoutUrlToken } from "../auth/url-token";
import { readBody } from "../http/body";
import { configRules } from "../config/rules";
import { jsonResponse, notFound, unwrap } from "../http/errors";
import { APP_NAME, controlHostFor } from "../http/hosts";
import { submitToStore } from "../shards/submit-route";
import type { RecordedRequest } from "../shared/types";

/**
 * The raw query with its `?` as sent (`/x?` keeps its bare `?`); "" when there is none.
 * A trailing signed-URL token (`e=…&token=AK:sign`) is the gateway's credential, like the
 * Authorization header: it is never recorded, never forwarded to the origin.
 */
export function rawQueryOf(url: string): string {
  const withoutFragment = url.split("#", 1)[0]!;
  const recorded = withoutUrlToken(withoutFragment) ?? withoutFragment;
  const mark = recorded.indexOf("?");
  return mark === -1 ? "" : recorded.slice(mark);
}

export async function handleSubmit(request: Request, app: string, env: Env, reqId: string): Promise<Response> {
  if (!APP_NAME.test(app)) throw notFound("app_not_found", `no such app: ${app}`);
  const body = await readBody(request, MAX_BODY_BYTES_LIMIT);
  const now = Date.now();
  const proof = readProof(request, {
    urlTokenAllowed: false,
    requireSignedDate: env.REQUIRE_SIGNED_DATE === "true",
    nowMs: now,
  });
  // The admin is verified here; a key of this app inside the submit RPC, by the object that holds it.
  // A key of another app is verified by its own app (401 when forged), then refused.
  const caller = await callerFor({ env, caller: await identifyCaller(proof, body, env, true), body }, app, "submit");
  const url = new URL(request.url);
  const host = request.headers.get("host") ?? url.host;
  // A bearer token is the secret itself, over HTTPS: there is no signature for a control header to escape.
  const coverage = qiniuCoverage(env.REQUIRE_SIGNED_CONTROL_HEADERS === "true" && proof.kind !== "bearer");
  const options = parseSubmitOptions(request.headers, now, configRules(env, host), coverage);

  const recorded: RecordedRequest = {
    method: request.method,
    path: url.pathname,
    raw_query: rawQueryOf(request.url),
    header: recordHeaders(request.headers),
    body,
  };
  const { id, deduplicated } = unwrap(await submitToStore(env, app, { caller, reqId, request: recorded, options }));

  const location = `${url.protocol}//${controlHostFor(host, env.APP_HOST_SUFFIX, env.CONTROL_HOST)}/v1/task/${id}`;
  const headers: Record<string, string> = { Location: location };
  if (deduplicated) headers["Asyncgate-Deduplicated"] = "true";
  return jsonResponse(JSON.stringify({ id }), deduplicated ? 200 : 202, reqId, headers);
}
