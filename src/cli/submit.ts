/** `asyncgate submit`: a request as a task, optionally waiting for its result. */
import type { SubmitOptions } from "../client/index";
import { UsageError, durationFlag, headerPairs, json, readData, string, timeFlag, type Command } from "./context";
import { waitFor } from "./tasks";

export const submitCommands: Record<string, Command> = {
  submit: {
    usage:
      "asyncgate submit <app> <path> [--method POST] [--data <text|@file|->] [-H 'Name: value']... [--delay 10s | --not-before <unix s|ISO time>] [--dedup <id>] [--retries N] [--attempt-timeout 30s] [--callback <url>] [--wait] [--timeout 60s]",
    summary: "submit a request as a task; prints {id} (or, with --wait, the finished record)",
    options: {
      method: { type: "string", short: "X" },
      data: { type: "string", short: "d" },
      header: { type: "string", short: "H", multiple: true },
      delay: { type: "string" },
      "not-before": { type: "string" },
      dedup: { type: "string" },
      retries: { type: "string" },
      "attempt-timeout": { type: "string" },
      callback: { type: "string" },
      wait: { type: "boolean" },
      timeout: { type: "string" },
    },
    args: [2, 2],
    async run(context) {
      const { values, args, client, out } = context;
      const options: SubmitOptions = {
        method: string(values, "method") ?? "POST",
        headers: headerPairs(values["header"] as string[] | undefined),
      };
      if (values["data"] !== undefined) options.body = readData(string(values, "data")!);
      if (values["delay"] !== undefined && values["not-before"] !== undefined)
        throw new UsageError("give --delay or --not-before, not both");
      if (values["delay"] !== undefined) options.delay = durationFlag(string(values, "delay")!, "--delay");
      const notBefore = timeFlag(values, "not-before");
      if (notBefore !== undefined) options.notBefore = notBefore;
      if (values["dedup"] !== undefined) options.deduplicationId = string(values, "dedup");
      if (values["retries"] !== undefined) options.retries = Number(values["retries"]);
      if (values["attempt-timeout"] !== undefined)
        options.timeout = durationFlag(string(values, "attempt-timeout")!, "--attempt-timeout");
      if (values["callback"] !== undefined) options.callback = string(values, "callback");
      const submitted = await client().submit(args[0]!, args[1]!, options);
      if (values["wait"]) return waitFor(context, submitted.id);
      out(json(submitted));
      return 0;
    },
  },
};
