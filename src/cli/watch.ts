/** `asyncgate watch`: an app's results as they arrive, over the live feed. */
import { AsyncgateError } from "../client/index";
import { UnreachableError, UsageError, endpointOf, isConnectionError, json, type Command } from "./context";

export const watchCommands: Record<string, Command> = {
  watch: {
    usage: "asyncgate watch <app> [--since <seq>]",
    summary: "print results as they arrive (JSON lines), resuming after <seq>",
    options: {
      since: {
        type: "string",
        value: "<seq>",
        description: "first replay the results after this seq (each result line has its seq), then go on live",
      },
    },
    args: [1, 1],
    examples: ["asyncgate watch demo", "asyncgate watch demo --since 41 | jq -c '{id, state}'"],
    notes: [
      "stderr says when it is connected; once connected it reconnects and resumes by itself until Ctrl-C (exit 130)",
      "needs Node 22 or later (a built-in WebSocket)",
    ],
    async run(context) {
      const { values, args, client, out, err, signal } = context;
      const since = values["since"] === undefined ? undefined : Number(values["since"]);
      if (since !== undefined && !(Number.isInteger(since) && since >= 0))
        throw new UsageError("--since must be a result seq (0 or more)");
      if (typeof globalThis.WebSocket !== "function") {
        err(`asyncgate watch: this Node (${process.version}) has no built-in WebSocket; watch needs Node 22 or later`);
        return 1;
      }
      const app = args[0]!;
      // Stops the feed on Ctrl-C, or when the gateway cannot be reached before it ever connected.
      const stop = new AbortController();
      const abort = () => stop.abort();
      signal.addEventListener("abort", abort, { once: true });
      if (signal.aborted) abort();
      let connected = false;
      let unreachable = false;
      let lost = false;
      const results = client().subscribe(app, {
        since,
        signal: stop.signal,
        onEvent: (event) => {
          if (stop.signal.aborted) return;
          if (event.type === "open") {
            err(`watching ${app} (${connected ? "reconnected" : "connected"}; Ctrl-C to stop)`);
            connected = true;
            lost = false;
          } else if (!connected && event.type === "error") {
            // Before the first connection: no answer (a refused connection, an unknown host, a
            // WebSocket that could not connect) ends it; bad keys or an unknown app end the feed
            // by themselves (said by main); another answer from the gateway is retried.
            if (event.error === undefined || isConnectionError(event.error)) {
              unreachable = true;
              abort();
            } else if (!(event.error instanceof AsyncgateError && event.error.status < 500))
              err(`asyncgate watch: ${event.detail}; retrying`);
          } else if (connected && !lost && (event.type === "close" || event.type === "error")) {
            lost = true;
            err(`asyncgate watch: lost the feed from ${endpointOf(context.env)}; reconnecting (Ctrl-C to stop)`);
          }
        },
      });
      try {
        for await (const result of results) out(json(result));
      } finally {
        signal.removeEventListener("abort", abort);
      }
      if (unreachable) throw new UnreachableError();
      return signal.aborted ? 130 : 0;
    },
  },
};
