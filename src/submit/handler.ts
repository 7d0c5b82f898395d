/**
 * Submission (SPEC §3): any request to `<app><suffix>` becomes a task. Nothing slow
 * happens here: record, authenticate, one RPC to the app's object, answer.
 */
import { parseSubmitOptions } from "./options";
import { recordHeaders } from "./record";
import { MAX_BODY_BYTES_LIMIT } from "../app/config";
import { adminKeys, authenticate, authorize } from "../auth/authenticate";
import { readBody } from "../http/body";
import { configRules } from "../http/context";
import { jsonResponse, notFound, unwrap } from "../http/errors";
import { APP_NAME, controlHostFor } from "../hosts";
import { appQueue } from "../shared/stubs";
import type { RecordedRequest } from "../shared/types";

/** The raw query with its `?` as sent (`/x?` keeps its bare `?`); "" when there is none. */
export function rawQueryOf(url: string): string {
  const withoutFragment = url.split("#", 1)[0]!;
  const mark = withoutFragment.indexOf("?");
  return mark === -1 ? "" : withoutFragment.slice(mark);
}

export async function handleSubmit(request: Request, app: string, env: Env, reqId: string): Promise<Response> {
  if (!APP_NAME.test(app)) throw notFound("app_not_found", `no such app: ${app}`);
  const body = await readBody(request, MAX_BODY_BYTES_LIMIT);
  const now = Date.now();
  const principal = await authenticate(request, body, adminKeys(env), now);
  authorize(principal, "submit", app);
  const options = parseSubmitOptions(request.headers, now, configRules(env));

  const url = new URL(request.url);
  const recorded: RecordedRequest = {
    method: request.method,
    path: url.pathname,
    raw_query: rawQueryOf(request.url),
    header: recordHeaders(request.headers),
    body,
  };
  const { id, deduplicated } = unwrap(await appQueue(env, app).submit({ reqId, request: recorded, options }));

  const host = request.headers.get("host") ?? url.host;
  const location = `${url.protocol}//${controlHostFor(host, env.APP_HOST_SUFFIX, env.CONTROL_HOST)}/v1/task/${id}`;
  const headers: Record<string, string> = { Location: location };
  if (deduplicated) headers["Asyncgate-Deduplicated"] = "true";
  return jsonResponse(JSON.stringify({ id }), deduplicated ? 200 : 202, reqId, headers);
}
