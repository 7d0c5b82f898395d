/**
 * asyncgate's Worker: `fetch` dispatches by host (app host → submission, any
 * other host → control API and the seeds' front doors), `queue` replays tasks to origins
 * (and hands dead letters back to their apps). Wiring only.
 */
import { isConsolePath, serveConsole } from "./control/console-assets";
import { handleControl } from "./control/router";
import { consumeTasks } from "./delivery/consumer";
import { isDeadLetterQueue, reconcileDeadLetters } from "./delivery/dead-letters";
import { handleFunctionGraph, isFunctionGraphPath } from "./front-doors/functiongraph";
import { handleTencentCi, isTencentCiPath } from "./front-doors/tencent-ci";
import { newReqId } from "./http/context";
import { renderError } from "./http/errors";
import { routeHost } from "./http/hosts";
import { meters } from "./shared/meters";
import { handleSubmit } from "./submit/handler";
import type { TaskMessage } from "./shared/types";

export { AppQueue } from "./app/app-queue";
export { AppRegistry } from "./registry/app-registry";

export default {
  async fetch(request, env): Promise<Response> {
    meters.worker_invocations++;
    const reqId = newReqId();
    try {
      const route = routeHost(request.headers.get("host") ?? new URL(request.url).host, env.APP_HOST_SUFFIX);
      const response =
        route.kind === "app"
          ? await handleSubmit(request, route.app, env, reqId)
          : await handleControlHost(request, env, reqId);
      if (response.webSocket) return response; // a 101's headers are the runtime's
      response.headers.set("X-Reqid", reqId);
      return response;
    } catch (error) {
      return renderError(error, reqId, "fetch");
    }
  },

  async queue(batch, env): Promise<void> {
    meters.worker_invocations++;
    if (isDeadLetterQueue(batch.queue)) await reconcileDeadLetters(batch, env);
    else await consumeTasks(batch, env);
  },
} satisfies ExportedHandler<Env, TaskMessage>;

/** The control host: the native API, the seeds' front doors (SPEC §9) in their own dialects, the console. */
function handleControlHost(request: Request, env: Env, reqId: string): Promise<Response> {
  const { pathname } = new URL(request.url);
  if (isConsolePath(pathname)) return serveConsole(request, env);
  if (isFunctionGraphPath(pathname)) return handleFunctionGraph(request, env, reqId);
  if (isTencentCiPath(pathname)) return handleTencentCi(request, env, reqId);
  return handleControl(request, env, reqId);
}
