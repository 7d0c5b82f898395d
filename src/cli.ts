/**
 * `asyncgate`: a command line on the client.
 *
 *   asyncgate watch <app> [--since <seq>]        print results as they arrive (JSON lines)
 *   asyncgate submit <app> <path> [--method M] [--data D] [-H 'Name: value'] [--delay 10s] [--wait]
 *   asyncgate get <task id>
 *   asyncgate wait <task id> [--timeout <ms>]
 *
 * Environment: ASYNCGATE_ENDPOINT (default http://async.localhost:8787), ASYNCGATE_ACCESS_KEY,
 * ASYNCGATE_SECRET_KEY, ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO (default: 127.0.0.1
 * at the endpoint's port when the endpoint is a *.localhost host).
 */
import { AsyncgateClient, AsyncgateError } from "./client/index";

const USAGE = `usage:
  asyncgate watch <app> [--since <seq>]
  asyncgate submit <app> <path> [--method M] [--data D] [-H 'Name: value'] [--delay 10s] [--wait]
  asyncgate get <task id>
  asyncgate wait <task id> [--timeout <ms>]
keys: ASYNCGATE_ACCESS_KEY, ASYNCGATE_SECRET_KEY; endpoint: ASYNCGATE_ENDPOINT`;

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
}

export function parseArgs(argv: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--wait") {
      flags.set("wait", ["true"]);
    } else if (arg.startsWith("-")) {
      const name = arg === "-H" ? "header" : arg.replace(/^--?/, "");
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      flags.set(name, [...(flags.get(name) ?? []), value]);
    } else {
      positional.push(arg);
    }
  }
  return { positional, flags };
}

function clientFromEnv(env: Record<string, string | undefined>): AsyncgateClient {
  const endpoint = env["ASYNCGATE_ENDPOINT"] ?? "http://async.localhost:8787";
  const accessKey = env["ASYNCGATE_ACCESS_KEY"];
  const secretKey = env["ASYNCGATE_SECRET_KEY"];
  if (!accessKey || !secretKey) throw new Error("set ASYNCGATE_ACCESS_KEY and ASYNCGATE_SECRET_KEY");
  const url = new URL(endpoint);
  const local = url.hostname === "localhost" || url.hostname.endsWith(".localhost");
  const connectTo = env["ASYNCGATE_CONNECT_TO"] ?? (local ? `${url.protocol}//127.0.0.1:${url.port || 80}` : undefined);
  return new AsyncgateClient({ endpoint, accessKey, secretKey, connectTo, appHostSuffix: env["ASYNCGATE_APP_HOST_SUFFIX"] });
}

export async function main(argv: string[], env: Record<string, string | undefined>, out: (line: string) => void): Promise<number> {
  const [command, ...rest] = argv;
  const { positional, flags } = parseArgs(rest);
  const flag = (name: string) => flags.get(name)?.[0];
  const client = clientFromEnv(env);
  switch (command) {
    case "watch": {
      const [app] = positional;
      if (!app) break;
      const since = flag("since");
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      for await (const result of client.subscribe(app, { since: since === undefined ? undefined : Number(since), signal: stop.signal })) {
        out(JSON.stringify(result));
      }
      return 0;
    }
    case "submit": {
      const [app, path] = positional;
      if (!app || !path) break;
      const headers = Object.fromEntries(
        (flags.get("header") ?? []).map((header) => [header.slice(0, header.indexOf(":")).trim(), header.slice(header.indexOf(":") + 1).trim()]),
      );
      const { id } = await client.submit(app, path, { method: flag("method") ?? "POST", body: flag("data"), headers, delay: flag("delay") });
      out(flags.has("wait") ? JSON.stringify(await client.waitForTask(id)) : JSON.stringify({ id }));
      return 0;
    }
    case "get": {
      const [id] = positional;
      if (!id) break;
      out(JSON.stringify(await client.getTask(id)));
      return 0;
    }
    case "wait": {
      const [id] = positional;
      if (!id) break;
      const timeout = flag("timeout");
      out(JSON.stringify(await client.waitForTask(id, { timeoutMs: timeout === undefined ? undefined : Number(timeout) })));
      return 0;
    }
  }
  console.error(USAGE);
  return 2;
}

const invokedDirectly = typeof process !== "undefined" && process.argv[1] !== undefined && /(^|[\\/])(cli\.(js|ts)|asyncgate)$/.test(process.argv[1]);
if (invokedDirectly) {
  main(process.argv.slice(2), process.env, (line) => console.log(line)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof AsyncgateError ? `${error.status} ${error.code}: ${error.message}` : error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
