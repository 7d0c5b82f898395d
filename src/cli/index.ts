/**
 * `asyncgate`: the gateway from a shell. Every data command prints JSON (streams print JSON
 * lines), so it composes with `jq`. Built on `node:util` parseArgs, strict: an unknown flag is
 * an error naming it. `asyncgate [group] [command] --help` and `--version` need no keys.
 *
 * Environment: ASYNCGATE_ENDPOINT (default http://async.localhost:8787), ASYNCGATE_ACCESS_KEY,
 * ASYNCGATE_SECRET_KEY, ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO (default: 127.0.0.1
 * at the endpoint's port when the endpoint is a *.localhost host, which Node does not resolve).
 */
import { parseArgs } from "node:util";
import { AsyncgateError, type AsyncgateClient } from "../client/index";
import { appsCommands } from "./apps";
import { consoleCommands } from "./console";
import {
  UsageError,
  clientFromEnv,
  isConnectionError,
  unreachableLine,
  type Command,
  type Context,
  type Values,
} from "./context";
import { GROUPS, commandHelp, globalHelp, groupCommands, groupHelp, version } from "./help";
import { keysCommands } from "./keys";
import { signCommands } from "./sign";
import { submitCommands } from "./submit";
import { tasksCommands } from "./tasks";
import { watchCommands } from "./watch";

/** Every command by name, in the order the help lists them. */
export const COMMANDS: Record<string, Command> = {
  ...appsCommands,
  ...keysCommands,
  ...tasksCommands,
  ...submitCommands,
  ...watchCommands,
  ...signCommands,
  ...consoleCommands,
};

const isHelp = (arg: string | undefined) => arg === "--help" || arg === "-h";

/** `asyncgate help [command…]`, `asyncgate [group] --help`: the help asked for, on stdout, exit 0. */
function help(words: string[], out: (line: string) => void, err: (line: string) => void): number {
  const name = words.join(" ");
  if (words.length === 0) out(globalHelp(COMMANDS));
  else if (COMMANDS[name]) out(commandHelp(name, COMMANDS[name]));
  else if (words.length === 1 && groupCommands(COMMANDS, name).length > 0) out(groupHelp(COMMANDS, name));
  else {
    err(`asyncgate help: unknown command ${JSON.stringify(name)}\n\n${globalHelp(COMMANDS)}`);
    return 2;
  }
  return 0;
}

/**
 * Runs the CLI; answers the exit code: 0 ok, 1 the gateway refused or failed (or could not be
 * reached), 2 a usage error, 3 a waited-for task failed, 130 interrupted.
 */
export async function main(
  argv: string[],
  env: Record<string, string | undefined>,
  out: (line: string) => void,
  err: (line: string) => void = (line) => console.error(line),
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  if (argv.length === 0) {
    err(globalHelp(COMMANDS));
    return 2;
  }
  if (argv[0] === "--version" || argv[0] === "-v") {
    out(version());
    return 0;
  }
  if (isHelp(argv[0])) return help([], out, err);
  if (argv[0] === "help") return help(argv.slice(1), out, err);
  const name = COMMANDS[`${argv[0]} ${argv[1]}`] ? `${argv[0]} ${argv[1]}` : argv[0]!;
  const command = COMMANDS[name];
  if (!command) {
    if (argv[0]! in GROUPS || groupCommands(COMMANDS, argv[0]!).length > 0) {
      if (isHelp(argv[1])) return help([argv[0]!], out, err);
      const group = groupCommands(COMMANDS, argv[0]!).map(([candidate]) => candidate.split(" ")[1]);
      err(
        `asyncgate: ${argv[0]} takes one of: ${group.join(", ")}${argv[1] === undefined ? "" : ` (not ${JSON.stringify(argv[1])})`}\n\n${groupHelp(COMMANDS, argv[0]!)}`,
      );
    } else err(`asyncgate: unknown command ${JSON.stringify(argv[0])}\n\n${globalHelp(COMMANDS)}`);
    return 2;
  }
  const rest = argv.slice(name.split(" ").length);
  let parsed: { values: Values; positionals: string[] };
  try {
    const options = Object.fromEntries(
      Object.entries(command.options ?? {}).map(([flag, { description: _, value: __, ...option }]) => [flag, option]),
    );
    parsed = parseArgs({
      args: rest,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as typeof parsed;
  } catch (error) {
    err(
      `asyncgate ${name}: ${error instanceof Error ? error.message : String(error)}\n\n${commandHelp(name, command)}`,
    );
    return 2;
  }
  if (parsed.values["help"]) {
    out(commandHelp(name, command));
    return 0;
  }
  const [min, max] = command.args;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    err(
      `asyncgate ${name}: expected ${min === max ? min : `${min}-${max}`} argument${max === 1 ? "" : "s"}\n\n${commandHelp(name, command)}`,
    );
    return 2;
  }
  let client: AsyncgateClient | null = null;
  const context: Context = {
    command: name,
    values: parsed.values,
    args: parsed.positionals,
    env,
    out,
    err,
    signal,
    client: () => (client ??= clientFromEnv(env)),
  };
  try {
    return await command.run(context);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`asyncgate ${name}: ${error.message}\n\n${commandHelp(name, command)}`);
      return 2;
    }
    if (error instanceof AsyncgateError) {
      err(`asyncgate ${name}: ${error.status} ${error.code}: ${error.message}`);
      return 1;
    }
    if (signal.aborted) return 130;
    if (isConnectionError(error)) {
      err(unreachableLine(name, env));
      return 1;
    }
    err(`asyncgate ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

const invokedDirectly =
  typeof process !== "undefined" &&
  process.argv[1] !== undefined &&
  /(^|[\\/])(cli\.js|cli[\\/]index\.ts|asyncgate)$/.test(process.argv[1]);
if (invokedDirectly) {
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  main(
    process.argv.slice(2),
    process.env,
    (line) => console.log(line),
    (line) => console.error(line),
    stop.signal,
  ).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
