// The limit of the runtime: a Worker that reads the body and answers 202 with an id, nothing else.
// For the subscribers section it also holds idle WebSockets the way the gateway does and nothing
// more (one Durable Object, the Hibernation API, "OK" answered by the runtime's auto-response),
// so the gateway's memory per subscriber can be told from the local runtime's.
import { DurableObject } from "cloudflare:workers";

export class Sockets extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("OK", "OK"));
  }

  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
}

export default {
  async fetch(request, env) {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket")
      return env.SOCKETS.get(env.SOCKETS.idFromName("subscribers")).fetch(request);
    await request.arrayBuffer();
    const id = crypto.randomUUID().replaceAll("-", "");
    return new Response(JSON.stringify({ id }), { status: 202, headers: { "content-type": "application/json" } });
  },
};
