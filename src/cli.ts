/**
 * `asyncgate`: the gateway from a shell. Every data command prints JSON (streams print JSON
 * lines), so it composes with `jq`. Built on `node:util` parseArgs, strict: an unknown flag is
 * an error naming it. `asyncgate <command> --help` needs no keys.
 *
 * Environment: ASYNCGATE_ENDPOINT (default http://async.localhost:8787), ASYNCGATE_ACCESS_KEY,
 * ASYNCGATE_SECRET_KEY, ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO (default: 127.0.0.1
 * at the endpoint's port when the endpoint is a *.localhost host, which Node does not resolve).
 */
import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { AsyncgateClient, AsyncgateError, TaskState, signRequest, type Permission, type SubmitOptions } from "./client/index";
import { parseDuration } from "./shared/duration";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | undefined>;

/** What a command gets: its parsed flags and arguments, a lazily made client, and the outputs. */
interface Context {
  values: Values;
  args: string[];
  env: Record<string, string | undefined>;
  client(): AsyncgateClient;
  out(line: string): void;
  err(line: string): void;
  signal: AbortSignal;
}

interface Command {
  usage: string;
  summary: string;
  options?: Options;
  /** How many positional arguments it takes. */
  args: [min: number, max: number];
  run(context: Context): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
class UsageError extends Error {}

const ENDPOINT_DEFAULT = "http://async.localhost:8787";

/** A flag's duration in seconds (the gateway's own syntax: 10s, 5m, 2h); a usage error when malformed. */
function durationFlag(text: string, flag: string): number {
  const seconds = parseDuration(text);
  if (seconds === null) throw new UsageError(`${flag} must be a duration such as 10s, 5m, 2h (got ${JSON.stringify(text)})`);
  return seconds;
}

/** A time flag (unix seconds or an ISO time) as unix seconds; undefined when not given. */
function timeFlag(values: Values, name: string): number | undefined {
  const text = string(values, name);
  if (text === undefined) return undefined;
  const at = /^\d+$/.test(text) ? Number(text) : Date.parse(text) / 1000;
  if (!Number.isFinite(at)) throw new UsageError(`--${name} must be unix seconds or an ISO time`);
  return at;
}

/** `--data` as given: text, `@file` for a file's bytes, `-` for standard input. */
function readData(value: string): Uint8Array | string {
  if (value === "-") return new Uint8Array(readFileSync(0));
  if (value.startsWith("@")) return new Uint8Array(readFileSync(value.slice(1)));
  return value;
}

/** A JSON document given inline or as `@file`. */
function readJson(value: string, flag: string): Record<string, unknown> {
  const text = value.startsWith("@") ? readFileSync(value.slice(1), "utf8") : value;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new UsageError(`${flag} must be a JSON object (inline, or @file)`);
}

function headerPairs(values: string[] | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const header of values ?? []) {
    const colon = header.indexOf(":");
    if (colon <= 0) throw new UsageError(`-H takes 'Name: value' (got ${JSON.stringify(header)})`);
    headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  return headers;
}

const STATE_NAMES: Record<string, number> = { waiting: TaskState.Waiting, doing: TaskState.Doing, success: TaskState.Success, failed: TaskState.Failed };

function taskState(text: string): number {
  const state = STATE_NAMES[text.toLowerCase()] ?? Number(text);
  if (!Object.values(TaskState).includes(state as 0)) throw new UsageError("--state must be waiting, doing, success, failed (or 0, 1, 10, 11)");
  return state;
}

const string = (values: Values, name: string): string | undefined => values[name] as string | undefined;
const json = (value: unknown) => JSON.stringify(value);

/** Whether an error means the gateway could not be reached (not an answer from it). */
function unreachable(error: unknown): boolean {
  return !(error instanceof AsyncgateError) && !(error instanceof UsageError) && error instanceof Error && !(error.name === "AbortError");
}

function describeUnreachable(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/**
 * Runs `attempt` until it settles with an answer from the gateway, saying on stderr at once,
 * and on every retry, that the gateway cannot be reached.
 */
async function whileUnreachable<T>(context: Context, what: string, attempt: () => Promise<T>, deadlineMs = Infinity): Promise<T> {
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (error) {
      if (!unreachable(error) || context.signal.aborted || Date.now() >= deadlineMs) throw error;
      const waitS = Math.max(0.001, Math.min(10, 2 ** failures, (deadlineMs - Date.now()) / 1000));
      context.err(`asyncgate: cannot reach ${endpointOf(context.env)} (${describeUnreachable(error)}) while ${what}; retrying in ${Math.round(waitS * 10) / 10} s`);
      await new Promise((resolve) => setTimeout(resolve, waitS * 1000));
    }
  }
}

const endpointOf = (env: Record<string, string | undefined>) => env["ASYNCGATE_ENDPOINT"] ?? ENDPOINT_DEFAULT;

function keysOf(env: Record<string, string | undefined>): { accessKey: string; secretKey: string } {
  const accessKey = env["ASYNCGATE_ACCESS_KEY"];
  const secretKey = env["ASYNCGATE_SECRET_KEY"];
  if (!accessKey || !secretKey) throw new UsageError("set ASYNCGATE_ACCESS_KEY and ASYNCGATE_SECRET_KEY (npm start prints local ones)");
  return { accessKey, secretKey };
}

function connectToOf(env: Record<string, string | undefined>): string | undefined {
  const url = new URL(endpointOf(env));
  const local = url.hostname === "localhost" || url.hostname.endsWith(".localhost");
  return env["ASYNCGATE_CONNECT_TO"] ?? (local ? `${url.protocol}//127.0.0.1:${url.port || 80}` : undefined);
}

function clientFromEnv(env: Record<string, string | undefined>): AsyncgateClient {
  return new AsyncgateClient({ endpoint: endpointOf(env), ...keysOf(env), connectTo: connectToOf(env), appHostSuffix: env["ASYNCGATE_APP_HOST_SUFFIX"] });
}

const COMMANDS: Record<string, Command> = {
  "apps create": {
    usage: "asyncgate apps create <name> --origin <url> [--config <json|@file>]",
    summary: "create an app; prints it with its signing_secret (shown once)",
    options: { origin: { type: "string" }, config: { type: "string" } },
    args: [1, 1],
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
    options: { ids: { type: "string" }, state: { type: "string" }, page: { type: "string" }, "page-size": { type: "string" } },
    args: [0, 0],
    async run({ values, client, out }) {
      const state = string(values, "state");
      if (state !== undefined && state !== "Active" && state !== "Paused") throw new UsageError("--state must be Active or Paused");
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
    async run({ args, client, out }) {
      out(json(await client().apps.get(args[0]!)));
      return 0;
    },
  },
  "apps update": {
    usage: "asyncgate apps update <name> --set <json|@file>",
    summary: "change an app's config (the fields given)",
    options: { set: { type: "string" } },
    args: [1, 1],
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
    async run({ args, client, out }) {
      out(json(await client().apps.pause(args[0]!)));
      return 0;
    },
  },
  "apps resume": {
    usage: "asyncgate apps resume <name>",
    summary: "start delivering again",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().apps.resume(args[0]!)));
      return 0;
    },
  },
  "apps delete": {
    usage: "asyncgate apps delete <name>",
    summary: "delete an app, its tasks and its keys",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().apps.delete(args[0]!)));
      return 0;
    },
  },
  "apps rotate-secret": {
    usage: "asyncgate apps rotate-secret <name>",
    summary: "a new signing secret (shown once); the old one signs beside it for 24 h",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().apps.rotateSigningSecret(args[0]!)));
      return 0;
    },
  },
  "keys create": {
    usage: "asyncgate keys create <app> --permissions submit,query,subscribe,manage",
    summary: "a new access key; prints its secret_key (shown once)",
    options: { permissions: { type: "string" } },
    args: [1, 1],
    async run({ values, args, client, out }) {
      const permissions = string(values, "permissions")?.split(",").map((permission) => permission.trim()).filter(Boolean);
      if (!permissions?.length) throw new UsageError("--permissions is required: a comma list of submit, query, subscribe, manage");
      out(json(await client().keys.create(args[0]!, permissions as Permission[])));
      return 0;
    },
  },
  "keys list": {
    usage: "asyncgate keys list <app>",
    summary: "an app's access keys (never their secrets)",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().keys.list(args[0]!)));
      return 0;
    },
  },
  "keys revoke": {
    usage: "asyncgate keys revoke <app> <access key>",
    summary: "revoke a key: it fails from the next request on",
    args: [2, 2],
    async run({ args, client, out }) {
      out(json(await client().keys.revoke(args[0]!, args[1]!)));
      return 0;
    },
  },
  "tasks list": {
    usage: "asyncgate tasks list <app> [--state waiting|doing|success|failed] [--after <unix s|ISO time>] [--before <unix s|ISO time>] [--limit N]",
    summary: "an app's tasks, newest first, without bodies (JSON lines)",
    options: { state: { type: "string" }, after: { type: "string" }, before: { type: "string" }, limit: { type: "string" } },
    args: [1, 1],
    async run({ values, args, client, out, signal }) {
      const limit = values["limit"] === undefined ? Infinity : Number(values["limit"]);
      if (!(limit > 0)) throw new UsageError("--limit must be a positive number");
      const state = values["state"] === undefined ? undefined : taskState(string(values, "state")!);
      let printed = 0;
      const createdAfter = timeFlag(values, "after");
      const createdBefore = timeFlag(values, "before");
      for await (const task of client().listTasks(args[0]!, { state, createdAfter, createdBefore, pageSize: Math.min(100, limit), signal })) {
        out(json(task));
        if (++printed >= limit) break;
      }
      return 0;
    },
  },
  "tasks get": {
    usage: "asyncgate tasks get <task id>",
    summary: "a task's record, request and response included",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().getTask(args[0]!)));
      return 0;
    },
  },
  "tasks cancel": {
    usage: "asyncgate tasks cancel <task id>",
    summary: "cancel a waiting task",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().cancel(args[0]!)));
      return 0;
    },
  },
  "tasks retry": {
    usage: "asyncgate tasks retry <task id>",
    summary: "run a failed task again",
    args: [1, 1],
    async run({ args, client, out }) {
      out(json(await client().retry(args[0]!)));
      return 0;
    },
  },
  "tasks wait": {
    usage: "asyncgate tasks wait <task id> [--timeout 60s]",
    summary: "wait until a task finishes; prints its record",
    options: { timeout: { type: "string" } },
    args: [1, 1],
    run: (context) => waitFor(context, context.args[0]!),
  },
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
      const options: SubmitOptions = { method: string(values, "method") ?? "POST", headers: headerPairs(values["header"] as string[] | undefined) };
      if (values["data"] !== undefined) options.body = readData(string(values, "data")!);
      if (values["delay"] !== undefined && values["not-before"] !== undefined) throw new UsageError("give --delay or --not-before, not both");
      if (values["delay"] !== undefined) options.delay = durationFlag(string(values, "delay")!, "--delay");
      const notBefore = timeFlag(values, "not-before");
      if (notBefore !== undefined) options.notBefore = notBefore;
      if (values["dedup"] !== undefined) options.deduplicationId = string(values, "dedup");
      if (values["retries"] !== undefined) options.retries = Number(values["retries"]);
      if (values["attempt-timeout"] !== undefined) options.timeout = durationFlag(string(values, "attempt-timeout")!, "--attempt-timeout");
      if (values["callback"] !== undefined) options.callback = string(values, "callback");
      const submitted = await client().submit(args[0]!, args[1]!, options);
      if (values["wait"]) return waitFor(context, submitted.id);
      out(json(submitted));
      return 0;
    },
  },
  watch: {
    usage: "asyncgate watch <app> [--since <seq>]",
    summary: "print results as they arrive (JSON lines), resuming after <seq>",
    options: { since: { type: "string" } },
    args: [1, 1],
    async run(context) {
      const { values, args, client, out, err, signal } = context;
      const since = values["since"] === undefined ? undefined : Number(values["since"]);
      if (since !== undefined && !(Number.isInteger(since) && since >= 0)) throw new UsageError("--since must be a result seq (0 or more)");
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
  sign: {
    usage: "asyncgate sign <METHOD> <URL> [--data <text|@file|->] [-H 'Name: value']...",
    summary: "print a ready curl command for any request, signed",
    options: { data: { type: "string", short: "d" }, header: { type: "string", short: "H", multiple: true } },
    args: [2, 2],
    async run({ values, args, env, out }) {
      const [method, url] = [args[0]!.toUpperCase(), args[1]!];
      if (!URL.canParse(url)) throw new UsageError(`not a URL: ${url}`);
      const data = values["data"] === undefined ? undefined : readData(string(values, "data")!);
      const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
      const headers = await signRequest(keysOf(env), { method, url, headers: headerPairs(values["header"] as string[] | undefined), body });
      const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
      const parts = ["curl", "-i", "-X", method, quote(url), ...Object.entries(headers).flatMap(([name, value]) => ["-H", quote(`${name}: ${value}`)])];
      if (typeof data === "string") parts.push("--data-binary", quote(data));
      else if (data !== undefined) parts.push("--data-binary", quote(`@${string(values, "data")!.replace(/^@/, "")}`));
      out(parts.join(" "));
      return 0;
    },
  },
  console: {
    usage: "asyncgate console",
    summary: "print the web console's URL, signed in with these keys (they stay in the URL fragment)",
    args: [0, 0],
    async run({ env, out }) {
      const { accessKey, secretKey } = keysOf(env);
      out(`${new URL("/console", endpointOf(env))}#ak=${encodeURIComponent(accessKey)}&sk=${encodeURIComponent(secretKey)}`);
      return 0;
    },
  },
};

/** `tasks wait` and `submit --wait`: polls until finished, saying so while the gateway is unreachable. */
async function waitFor(context: Context, id: string): Promise<number> {
  const timeout = string(context.values, "timeout");
  const timeoutMs = (timeout === undefined ? 60 : durationFlag(timeout, "--timeout")) * 1000;
  const deadline = Date.now() + timeoutMs;
  const task = await whileUnreachable(
    context,
    `waiting for ${id}`,
    () => context.client().waitForTask(id, { timeoutMs: Math.max(1, deadline - Date.now()), signal: context.signal }),
    deadline,
  );
  context.out(json(task));
  return 0;
}

const GLOBAL_HELP = `usage: asyncgate <command> [options]   (asyncgate <command> --help for its options)

${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(19)} ${command.summary}`)
  .join("\n")}

environment: ASYNCGATE_ENDPOINT (default ${ENDPOINT_DEFAULT}), ASYNCGATE_ACCESS_KEY, ASYNCGATE_SECRET_KEY,
  ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO. Durations: 500ms, 10s, 5m, 2h, 1d.`;

function commandHelp(name: string, command: Command): string {
  return `usage: ${command.usage}\n\n${name}: ${command.summary}`;
}

/** Runs the CLI; answers the exit code (0 ok, 1 the gateway refused or failed, 2 a usage error). */
export async function main(
  argv: string[],
  env: Record<string, string | undefined>,
  out: (line: string) => void,
  err: (line: string) => void = (line) => console.error(line),
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    (argv.length === 0 ? err : out)(GLOBAL_HELP);
    return argv.length === 0 ? 2 : 0;
  }
  const name = COMMANDS[`${argv[0]} ${argv[1]}`] ? `${argv[0]} ${argv[1]}` : argv[0]!;
  const command = COMMANDS[name];
  if (!command) {
    const group = Object.keys(COMMANDS).filter((candidate) => candidate.startsWith(`${argv[0]} `));
    err(group.length > 0 ? `asyncgate: ${argv[0]} takes one of: ${group.map((c) => c.split(" ")[1]).join(", ")}` : `asyncgate: unknown command ${JSON.stringify(argv[0])}\n\n${GLOBAL_HELP}`);
    return 2;
  }
  const rest = argv.slice(name.split(" ").length);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    err(`asyncgate ${name}: ${error instanceof Error ? error.message : String(error)}\n${commandHelp(name, command)}`);
    return 2;
  }
  if (parsed.values["help"]) {
    out(commandHelp(name, command));
    return 0;
  }
  const [min, max] = command.args;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    err(`asyncgate ${name}: expected ${min === max ? min : `${min}-${max}`} argument${max === 1 ? "" : "s"}\n${commandHelp(name, command)}`);
    return 2;
  }
  let client: AsyncgateClient | null = null;
  const context: Context = { values: parsed.values, args: parsed.positionals, env, out, err, signal, client: () => (client ??= clientFromEnv(env)) };
  try {
    return await command.run(context);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`asyncgate ${name}: ${error.message}\n${commandHelp(name, command)}`);
      return 2;
    }
    if (error instanceof AsyncgateError) {
      err(`asyncgate ${name}: ${error.status} ${error.code}: ${error.message}`);
      return 1;
    }
    if (signal.aborted) return 130;
    err(`asyncgate ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

const invokedDirectly = typeof process !== "undefined" && process.argv[1] !== undefined && /(^|[\\/])(cli\.(js|ts)|asyncgate)$/.test(process.argv[1]);
if (invokedDirectly) {
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  main(process.argv.slice(2), process.env, (line) => console.log(line), (line) => console.error(line), stop.signal).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
