/** `asyncgate submit`: a request as a task, optionally waiting for its result. */
import type { SubmitOptions } from "../client/index";
import { UsageError, durationFlag, headerPairs, json, readData, string, timeFlag, type Command } from "./context";
import { BODY_NOTES, BODY_OPTION, WAIT_EXIT, checkWaitFlags, waitFor } from "./tasks";

export const submitCommands: Record<string, Command> = {
  submit: {
    usage:
      "asyncgate submit <app> <path> [--method POST] [--data <text|@file|->] [-H 'Name: value']... [--delay 10s | --not-before <unix s|ISO time>] [--dedup <id>] [--retries N] [--attempt-timeout 30s] [--callback <url>] [--wait [--timeout 60s] [--body text|json|base64]]",
    summary: "submit a request as a task; prints {id} (or, with --wait, the finished record)",
    options: {
      method: { type: "string", short: "X", value: "<method>", description: "the request's method (default POST)" },
      data: {
        type: "string",
        short: "d",
        value: "<text|@file|->",
        description: "the request's body: text, @file for a file's bytes, - for standard input",
      },
      header: {
        type: "string",
        short: "H",
        multiple: true,
        value: "'Name: value'",
        description: "a request header (repeatable)",
      },
      delay: { type: "string", value: "<duration>", description: "run it no sooner than this from now (10s, 5m, 2h)" },
      "not-before": {
        type: "string",
        value: "<unix s|ISO time>",
        description: "run it no sooner than this time (instead of --delay)",
      },
      dedup: {
        type: "string",
        value: "<id>",
        description: "a deduplication id: the same id again answers the first task",
      },
      retries: {
        type: "string",
        value: "N",
        description: "retries after the first attempt (default: the app's policy)",
      },
      "attempt-timeout": { type: "string", value: "<duration>", description: "how long one attempt may take" },
      callback: { type: "string", value: "<url>", description: "POST the finished task's record to this URL" },
      wait: { type: "boolean", description: "wait until the task finishes and print its record (exit 3 if it failed)" },
      timeout: {
        type: "string",
        value: "<duration>",
        description: "with --wait: give up after this long, exit 1 (default 60s)",
      },
      body: BODY_OPTION,
    },
    args: [2, 2],
    examples: [
      `asyncgate submit demo /hello --data '{"hello":"world"}' --wait`,
      "asyncgate submit demo /report -X PUT --data @report.json -H 'Content-Type: application/json' --delay 5m",
    ],
    notes: [...BODY_NOTES, `with --wait, ${WAIT_EXIT}`],
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
      if (!values["wait"] && (values["timeout"] !== undefined || values["body"] !== undefined))
        throw new UsageError("--timeout and --body go with --wait");
      if (values["wait"]) checkWaitFlags(values); // before anything is sent
      const submitted = await client().submit(args[0]!, args[1]!, options);
      if (values["wait"]) return waitFor(context, submitted.id, true);
      out(json(submitted));
      return 0;
    },
  },
};
