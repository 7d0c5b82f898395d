/**
 * asyncgate's Worker: `fetch` dispatches by host (app host → submission, any
 * other host → control API), `queue` replays tasks to origins. Wiring only.
 */
import { handleControl } from "./control/router";
import { consumeTasks } from "./delivery/consumer";
import { newReqId } from "./http/context";
import { renderError } from "./http/errors";
import { routeHost } from "./hosts";
import { handleSubmit } from "./submit/handler";
import type { TaskMessage } from "./shared/types";

export { AppQueue } from "./app/app-queue";
export { AppRegistry } from "./registry/app-registry";

export default {
  async fetch(request, env): Promise<Response> {
    const reqId = newReqId();
    try {
      const route = routeHost(request.headers.get("host") ?? new URL(request.url).host, env.APP_HOST_SUFFIX);
      const response =
        route.kind === "app" ? await handleSubmit(request, route.app, env, reqId) : await handleControl(request, env, reqId);
      if (response.webSocket) return response; // a 101's headers are the runtime's
      response.headers.set("X-Reqid", reqId);
      return response;
    } catch (error) {
      return renderError(error, reqId, "fetch");
    }
  },

  async queue(batch, env): Promise<void> {
    await consumeTasks(batch, env);
  },
} satisfies ExportedHandler<Env, TaskMessage>;
