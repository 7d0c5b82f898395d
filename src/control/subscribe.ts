/**
 * `GET /v1/tasks?app=<app>[&since=<seq>]` upgraded to a WebSocket: the live result feed
 * (SPEC §6), the one request that may authenticate with a signed URL. The caller is
 * verified here (one RPC to its key's app object), then the app's object accepts the
 * socket with the Hibernation API.
 */
import type { IRequest } from "itty-router";
import { queryParam, type ControlContext } from "./context";
import { verifiedPrincipal } from "./callers";
import { authorize } from "../auth/authenticate";
import { GatewayError, badRequest } from "../http/errors";
import { APP_NAME } from "../http/hosts";
import { OPENED_BY_HEADER } from "../app/feed";
import { appQueue } from "../app/stubs";

export const isWebSocketUpgrade = (request: Request) => request.headers.get("upgrade")?.toLowerCase() === "websocket";

export async function subscribe(request: IRequest, context: ControlContext): Promise<Response> {
  const app = queryParam(request.query, "app");
  if (!app || !APP_NAME.test(app)) throw badRequest("invalid_app", "app is required and must be an app name");
  const since = queryParam(request.query, "since");
  if (since !== null && !/^\d{1,15}$/.test(since))
    throw badRequest("invalid_since", "since must be a result sequence number");
  const principal = await verifiedPrincipal(context);
  authorize(principal, "subscribe", app);
  const forwarded = new Request(request.url, { headers: request.headers });
  forwarded.headers.set("x-reqid", context.reqId);
  // Which key opened the feed, so revoking the key closes it (the client's own value never passes).
  forwarded.headers.delete(OPENED_BY_HEADER);
  if (principal.kind === "key") forwarded.headers.set(OPENED_BY_HEADER, principal.accessKey);
  const response = await appQueue(context.env, app).fetch(forwarded);
  // The object's 101 carries the socket; the upgrade answers with the request's id like any response.
  if (response.status === 101) {
    return new Response(null, { status: 101, webSocket: response.webSocket, headers: { "X-Reqid": context.reqId } });
  }
  const { code, error } = (await response.json()) as { code: string; error: string };
  throw new GatewayError(response.status, code, error);
}
