/** `asyncgate sign`: any request signed with the keys, as a ready curl command. */
import { signRequest } from "../client/index";
import { UsageError, headerPairs, keysOf, readData, string, type Command } from "./context";

export const signCommands: Record<string, Command> = {
  sign: {
    usage: "asyncgate sign <METHOD> <URL> [--data <text|@file|->] [-H 'Name: value']...",
    summary: "print a ready curl command for any request, signed",
    options: {
      data: {
        type: "string",
        short: "d",
        value: "<text|@file|->",
        description: "the body to sign and send: text, @file for a file's bytes, - for standard input",
      },
      header: {
        type: "string",
        short: "H",
        multiple: true,
        value: "'Name: value'",
        description: "a header to sign and send (repeatable)",
      },
    },
    args: [2, 2],
    examples: [
      "asyncgate sign GET http://localhost:8787/v1/apps",
      `asyncgate sign POST http://demo.async.localhost:8787/hello --data '{"a":1}' | sh`,
    ],
    async run({ values, args, env, out }) {
      const [method, url] = [args[0]!.toUpperCase(), args[1]!];
      if (!URL.canParse(url)) throw new UsageError(`not a URL: ${url}`);
      const data = values["data"] === undefined ? undefined : readData(string(values, "data")!);
      const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
      const headers = await signRequest(keysOf(env), {
        method,
        url,
        headers: headerPairs(values["header"] as string[] | undefined),
        body,
      });
      const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
      const parts = [
        "curl",
        "-i",
        "-X",
        method,
        quote(url),
        ...Object.entries(headers).flatMap(([name, value]) => ["-H", quote(`${name}: ${value}`)]),
      ];
      if (typeof data === "string") parts.push("--data-binary", quote(data));
      else if (data !== undefined) parts.push("--data-binary", quote(`@${string(values, "data")!.replace(/^@/, "")}`));
      out(parts.join(" "));
      return 0;
    },
  },
};
