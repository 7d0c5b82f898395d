/**
 * `asyncgate`: the gateway from a shell. Every data command prints JSON (streams print JSON
 * lines), so it composes with `jq`. Built on `node:util` parseArgs, strict: an unknown flag is
 * an error naming it. `asyncgate <command> --help` needs no keys.
 *
 * Environment: ASYNCGATE_ENDPOINT (default http://async.localhost:8787), ASYNCGATE_ACCESS_KEY,
 * ASYNCGATE_SECRET_KEY, ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO (default: 127.0.0.1
 * at the endpoint's port when the endpoint is a *.localhost host, which Node does not resolve).
 */
import { parseArgs } from "node:util";
import { AsyncgateError, type AsyncgateClient } from "../client/index";
import { appsCommands } from "./apps";
import { consoleCommands } from "./console";
import { ENDPOINT_DEFAULT, UsageError, clientFromEnv, type Command, type Context, type Values } from "./context";
import { keysCommands } from "./keys";
import { signCommands } from "./sign";
import { submitCommands } from "./submit";
import { tasksCommands } from "./tasks";
import { watchCommands } from "./watch";

/** Every command by name, in the order the help lists them. */
const COMMANDS: Record<string, Command> = {
  ...appsCommands,
  ...keysCommands,
  ...tasksCommands,
  ...submitCommands,
  ...watchCommands,
  ...signCommands,
  ...consoleCommands,
};

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
    err(
      group.length > 0
        ? `asyncgate: ${argv[0]} takes one of: ${group.map((c) => c.split(" ")[1]).join(", ")}`
        : `asyncgate: unknown command ${JSON.stringify(argv[0])}\n\n${GLOBAL_HELP}`,
    );
    return 2;
  }
  const rest = argv.slice(name.split(" ").length);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as typeof parsed;
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
    err(
      `asyncgate ${name}: expected ${min === max ? min : `${min}-${max}`} argument${max === 1 ? "" : "s"}\n${commandHelp(name, command)}`,
    );
    return 2;
  }
  let client: AsyncgateClient | null = null;
  const context: Context = {
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
