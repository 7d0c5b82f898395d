/** `asyncgate watch`: an app's results as they arrive, over the live feed. */
import { UsageError, endpointOf, json, whileUnreachable, type Command } from "./context";

export const watchCommands: Record<string, Command> = {
  watch: {
    usage: "asyncgate watch <app> [--since <seq>]",
    summary: "print results as they arrive (JSON lines), resuming after <seq>",
    options: { since: { type: "string" } },
    args: [1, 1],
    async run(context) {
      const { values, args, client, out, err, signal } = context;
      const since = values["since"] === undefined ? undefined : Number(values["since"]);
      if (since !== undefined && !(Number.isInteger(since) && since >= 0))
        throw new UsageError("--since must be a result seq (0 or more)");
      let lastSeq = since;
      // The iterator reconnects by itself once connected; an unreachable gateway at the start
      // (or an iterator that gave up) is said on stderr and tried again.
      await whileUnreachable(context, `watching ${args[0]}`, async () => {
        const results = client().subscribe(args[0]!, {
          since: lastSeq,
          signal,
          onEvent: (event) => {
            if (event.type !== "error") return;
            const code = /\b(E[A-Z]{3,})\b/.exec(event.detail ?? "")?.[1];
            err(
              code
                ? `asyncgate: cannot reach ${endpointOf(context.env)} (${code}) while watching ${args[0]}; retrying`
                : `asyncgate: feed interrupted (${event.detail ?? "error"}); reconnecting`,
            );
          },
        });
        for await (const result of results) {
          lastSeq = result.seq;
          out(json(result));
        }
      });
      return 0;
    },
  },
};
