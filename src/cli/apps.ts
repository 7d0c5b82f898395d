/**
 * `asyncgate apps …`: create, list, get, update, pause, resume, delete an app; rotate its
 * signing secret; its stats; redrive its failed tasks, purge its waiting ones. And `meters`.
 */
import { UsageError, json, readJson, string, timeFlag, type Command } from "./context";

export const appsCommands: Record<string, Command> = {
  "apps create": {
    usage: "asyncgate apps create <name> --origin <url> [--config <json|@file>]",
    summary: "create an app; prints it with its signing_secret (shown once)",
    options: {
      origin: { type: "string", value: "<url>", description: "where its tasks are delivered (required)" },
      config: {
        type: "string",
        value: "<json|@file>",
        description: "more of its config as a JSON object, inline or @file (docs/configuration.md)",
      },
    },
    args: [1, 1],
    examples: [
      "asyncgate apps create shop --origin http://127.0.0.1:8788",
      `asyncgate apps create shop --origin https://shop.example.com --config '{"timeout": 30}'`,
    ],
    async run({ values, args, client, out }) {
      const origin = string(values, "origin");
      if (!origin) throw new UsageError("--origin is required");
      const config = values["config"] ? readJson(string(values, "config")!, "--config") : {};
      out(json(await client().apps.create({ ...config, name: args[0]!, origin })));
      return 0;
    },
  },
  "apps list": {
    usage: "asyncgate apps list [--ids a,b] [--state Active|Paused] [--page N] [--page-size N]",
    summary: "list apps (one page)",
    options: {
      ids: { type: "string", value: "a,b", description: "only these apps (a comma list of names)" },
      state: { type: "string", value: "Active|Paused", description: "only apps in this state" },
      page: { type: "string", value: "N", description: "which page, from 1 (default 1)" },
      "page-size": { type: "string", value: "N", description: "apps per page" },
    },
    args: [0, 0],
    examples: ["asyncgate apps list", "asyncgate apps list --state Paused --page-size 50 | jq -r '.apps[].name'"],
    async run({ values, client, out }) {
      const state = string(values, "state");
      if (state !== undefined && state !== "Active" && state !== "Paused")
        throw new UsageError("--state must be Active or Paused");
      const integer = (name: string) => (values[name] === undefined ? undefined : Number(values[name]));
      const ids = string(values, "ids")?.split(",").filter(Boolean);
      out(json(await client().apps.list({ ids, state, page: integer("page"), pageSize: integer("page-size") })));
      return 0;
    },
  },
  "apps get": {
    usage: "asyncgate apps get <name>",
    summary: "an app's config, delivery state and task counts",
    args: [1, 1],
    examples: ["asyncgate apps get demo"],
    async run({ args, client, out }) {
      out(json(await client().apps.get(args[0]!)));
      return 0;
    },
  },
  "apps update": {
    usage: "asyncgate apps update <name> --set <json|@file>",
    summary: "change an app's config (the fields given)",
    options: {
      set: {
        type: "string",
        value: "<json|@file>",
        description: "the config fields to change, as a JSON object, inline or @file (required)",
      },
    },
    args: [1, 1],
    examples: [`asyncgate apps update demo --set '{"timeout": 30}'`, "asyncgate apps update demo --set @patch.json"],
    async run({ values, args, client, out }) {
      if (!values["set"]) throw new UsageError("--set is required, e.g. --set '{\"timeout\": 30}'");
      out(json(await client().apps.update(args[0]!, readJson(string(values, "set")!, "--set"))));
      return 0;
    },
  },
  "apps pause": {
    usage: "asyncgate apps pause <name>",
    summary: "stop starting deliveries; tasks are still accepted",
    args: [1, 1],
    examples: ["asyncgate apps pause demo"],
    async run({ args, client, out }) {
      out(json(await client().apps.pause(args[0]!)));
      return 0;
    },
  },
  "apps resume": {
    usage: "asyncgate apps resume <name>",
    summary: "start delivering again",
    args: [1, 1],
    examples: ["asyncgate apps resume demo"],
    async run({ args, client, out }) {
      out(json(await client().apps.resume(args[0]!)));
      return 0;
    },
  },
  "apps delete": {
    usage: "asyncgate apps delete <name>",
    summary: "delete an app, its tasks and its keys",
    args: [1, 1],
    examples: ["asyncgate apps delete shop"],
    async run({ args, client, out }) {
      out(json(await client().apps.delete(args[0]!)));
      return 0;
    },
  },
  "apps rotate-secret": {
    usage: "asyncgate apps rotate-secret <name>",
    summary: "a new signing secret (shown once); the old one signs beside it for 24 h",
    args: [1, 1],
    examples: ["asyncgate apps rotate-secret shop | jq -r .signing_secret"],
    async run({ args, client, out }) {
      out(json(await client().apps.rotateSigningSecret(args[0]!)));
      return 0;
    },
  },
  "apps stats": {
    usage: "asyncgate apps stats <name>",
    summary: "counts, latency percentiles, the last minute and hour, limits and delivery state",
    args: [1, 1],
    examples: ["asyncgate apps stats demo", "asyncgate apps stats demo | jq .latency_ms"],
    async run({ args, client, out }) {
      out(json(await client().apps.stats(args[0]!)));
      return 0;
    },
  },
  "apps redrive": {
    usage: "asyncgate apps redrive <name> [--since <time>] [--until <time>] [--status <code>] [--dry-run]",
    summary: "run failed tasks again (each once, a fresh attempt budget): 500 now, the rest 500 per alarm",
    options: {
      since: { type: "string", value: "<time>", description: "only tasks created since (unix seconds or ISO time)" },
      until: { type: "string", value: "<time>", description: "only tasks created before (unix seconds or ISO time)" },
      status: { type: "string", value: "<code>", description: "only tasks whose last response had this status" },
      "dry-run": { type: "boolean", description: "count them, run nothing" },
    },
    args: [1, 1],
    examples: ["asyncgate apps redrive shop --status 503 --dry-run", "asyncgate apps redrive shop --since 2026-12-01"],
    async run({ values, args, client, out }) {
      const status = string(values, "status");
      if (status !== undefined && !/^[1-5]\d\d$/.test(status)) throw new UsageError("--status must be an HTTP status");
      const filter = {
        since: timeFlag(values, "since"),
        until: timeFlag(values, "until"),
        statusCode: status === undefined ? undefined : Number(status),
        dryRun: values["dry-run"] === true,
      };
      out(json(await client().apps.redrive(args[0]!, filter)));
      return 0;
    },
  },
  "apps purge": {
    usage: "asyncgate apps purge <name>",
    summary: "drop every waiting task (running ones finish): 500 now, the rest 500 per alarm",
    args: [1, 1],
    examples: ["asyncgate apps purge shop"],
    async run({ args, client, out }) {
      out(json(await client().apps.purge(args[0]!)));
      return 0;
    },
  },
  meters: {
    usage: "asyncgate meters [--apps a,b]",
    summary: "what the gateway has spent since its isolates started (admin keys; exact locally)",
    options: { apps: { type: "string", value: "a,b", description: "add these apps' objects' meters" } },
    args: [0, 0],
    examples: ["asyncgate meters --apps demo | jq .meters.sql_rows_written"],
    async run({ values, client, out }) {
      out(json(await client().meters(string(values, "apps")?.split(",").filter(Boolean) ?? [])));
      return 0;
    },
  },
};
