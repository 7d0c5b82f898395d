/** The CLI's help texts (global, per group, per command) and its version. */
import { readFileSync } from "node:fs";
import { ENDPOINT_DEFAULT, type Command, type Option } from "./context";

/** The command groups (`asyncgate apps …`): what each is for, and examples across its commands. */
export const GROUPS: Record<string, { summary: string; examples: string[] }> = {
  apps: {
    summary: "an origin that tasks are delivered to, with its delivery config and signing secret",
    examples: ["asyncgate apps create shop --origin http://127.0.0.1:8788", "asyncgate apps get shop"],
  },
  keys: {
    summary: "access keys that may submit, query, subscribe or manage that app only",
    examples: ["asyncgate keys create shop --permissions submit,query", "asyncgate keys list shop"],
  },
  tasks: {
    summary: "list an app's tasks, and get, cancel, retry or wait for one",
    examples: ["asyncgate tasks list demo --state failed", "asyncgate tasks wait <id> --body json"],
  },
};

export const EXIT_CODES =
  "exit codes: 0 ok, 1 the gateway refused or failed (or could not be reached), 2 a usage error,\n" +
  "  3 the task failed (submit --wait, tasks wait), 130 interrupted (Ctrl-C)";

const ENVIRONMENT = `environment: ASYNCGATE_ENDPOINT (default ${ENDPOINT_DEFAULT}), ASYNCGATE_ACCESS_KEY, ASYNCGATE_SECRET_KEY,
  ASYNCGATE_APP_HOST_SUFFIX, ASYNCGATE_CONNECT_TO. Durations: 500ms, 10s, 5m, 2h, 1d.`;

/** Rows of a two-column list, the first column padded to the widest. */
function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`).join("\n");
}

function flag(name: string, option: Option): string {
  const short = option.short ? `-${option.short}, ` : "";
  const value = option.type === "string" ? ` ${option.value ?? "<value>"}` : "";
  return `${short}--${name}${value}`;
}

export function commandHelp(name: string, command: Command): string {
  const options = Object.entries(command.options ?? {}).map(([flagName, option]): [string, string] => [
    flag(flagName, option),
    option.description,
  ]);
  options.push(["-h, --help", "print this help"]);
  return [
    `usage: ${command.usage}`,
    `${name}: ${command.summary}`,
    `options:\n${table(options)}`,
    `examples:\n${command.examples.map((example) => `  ${example}`).join("\n")}`,
    ...(command.notes ?? []),
  ].join("\n\n");
}

/** The commands of a group (`apps`), or none when `group` is no group. */
export function groupCommands(commands: Record<string, Command>, group: string): [string, Command][] {
  return Object.entries(commands).filter(([name]) => name.startsWith(`${group} `));
}

export function groupHelp(commands: Record<string, Command>, group: string): string {
  const members = groupCommands(commands, group);
  return [
    `usage: asyncgate ${group} <command> [options]   (asyncgate ${group} <command> --help for its options)`,
    `${group}: ${GROUPS[group]?.summary ?? ""}`,
    `commands:\n${table(members.map(([name, command]) => [name.slice(group.length + 1), command.summary]))}`,
    `examples:\n${(GROUPS[group]?.examples ?? []).map((example) => `  ${example}`).join("\n")}`,
  ].join("\n\n");
}

export function globalHelp(commands: Record<string, Command>): string {
  return [
    "usage: asyncgate <command> [options]   (asyncgate <command> --help for its options and examples)",
    `commands:\n${table(Object.entries(commands).map(([name, command]) => [name, command.summary]))}`,
    "options:\n" +
      table([
        ["-h, --help", "print this help (asyncgate help <command> for a command's)"],
        ["-v, --version", "print asyncgate's version"],
      ]),
    "examples:\n" +
      '  asyncgate submit demo /hello --data \'{"hello":"world"}\' --wait\n' +
      "  asyncgate watch demo\n" +
      "  asyncgate tasks list demo --state failed --limit 5",
    ENVIRONMENT,
    EXIT_CODES,
  ].join("\n\n");
}

/** asyncgate's version, from the package.json above this module (src/cli/ or dist/, wherever installed). */
export function version(): string {
  for (const up of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "asyncgate" && pkg.version) return pkg.version;
    } catch {
      // not here: one folder up
    }
  }
  return "unknown";
}
