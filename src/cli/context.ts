/** What every CLI command gets and shares: its context, usage errors, flag parsers, the client from the environment. */
import { readFileSync } from "node:fs";
import type { ParseArgsConfig } from "node:util";
import { AsyncgateClient, AsyncgateError } from "../client/index";
import { parseDuration } from "../shared/duration";

/** A flag: what `node:util` parseArgs takes, plus the line the help prints for it. */
export type Option = NonNullable<ParseArgsConfig["options"]>[string] & {
  description: string;
  /** The value's placeholder in the help (string flags), e.g. `<url>`. @default "<value>" */
  value?: string;
};
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What a command gets: its parsed flags and arguments, a lazily made client, and the outputs. */
export interface Context {
  /** The command's name as typed, e.g. `tasks wait`. */
  command: string;
  values: Values;
  args: string[];
  env: Record<string, string | undefined>;
  client(): AsyncgateClient;
  out(line: string): void;
  err(line: string): void;
  signal: AbortSignal;
}

export interface Command {
  usage: string;
  summary: string;
  options?: Record<string, Option>;
  /** How many positional arguments it takes. */
  args: [min: number, max: number];
  /** Command lines the help shows; at least one. */
  examples: [string, ...string[]];
  /** Further lines for the help (exit codes, output shape). */
  notes?: string[];
  run(context: Context): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** The gateway could not be reached (no answer from it): one line on stderr, exit code 1. */
export class UnreachableError extends Error {}

/** The error codes (Node's, undici's) and texts that mean no connection was made or kept. */
const CONNECTION_CODE =
  /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|UND_ERR_\w+)$/;
const CONNECTION_TEXT =
  /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b|fetch failed/;

/** Whether an error means the gateway could not be reached (not an answer from it, nor a usage error). */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof UnreachableError) return true;
  if (!(error instanceof Error) || error instanceof AsyncgateError || error instanceof UsageError) return false;
  const nested = [error, error.cause, ...(error instanceof AggregateError ? error.errors : [])];
  const codes = nested.map((inner) => (inner as { code?: unknown } | null | undefined)?.code);
  return (
    codes.some((code) => typeof code === "string" && CONNECTION_CODE.test(code)) || CONNECTION_TEXT.test(error.message)
  );
}

/** The one line said for an unreachable gateway, whatever the command and the cause. */
export const unreachableLine = (command: string, env: Record<string, string | undefined>) =>
  `asyncgate ${command}: cannot reach the gateway at ${endpointOf(env)} (is \`npm start\` running?)`;

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

export const ENDPOINT_DEFAULT = "http://async.localhost:8787";

/** A flag's duration in seconds (the gateway's own syntax: 10s, 5m, 2h); a usage error when malformed. */
export function durationFlag(text: string, flag: string): number {
  const seconds = parseDuration(text);
  if (seconds === null)
    throw new UsageError(`${flag} must be a duration such as 10s, 5m, 2h (got ${JSON.stringify(text)})`);
  return seconds;
}

/** A time flag (unix seconds or an ISO time) as unix seconds; undefined when not given. */
export function timeFlag(values: Values, name: string): number | undefined {
  const text = string(values, name);
  if (text === undefined) return undefined;
  const at = /^\d+$/.test(text) ? Number(text) : Date.parse(text) / 1000;
  if (!Number.isFinite(at)) throw new UsageError(`--${name} must be unix seconds or an ISO time`);
  return at;
}

/** `--data` as given: text, `@file` for a file's bytes, `-` for standard input. */
export function readData(value: string): Uint8Array | string {
  if (value === "-") return new Uint8Array(readFileSync(0));
  if (value.startsWith("@")) return new Uint8Array(readFileSync(value.slice(1)));
  return value;
}

/** A JSON document given inline or as `@file`. */
export function readJson(value: string, flag: string): Record<string, unknown> {
  const text = value.startsWith("@") ? readFileSync(value.slice(1), "utf8") : value;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new UsageError(`${flag} must be a JSON object (inline, or @file)`);
}

export function headerPairs(values: string[] | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const header of values ?? []) {
    const colon = header.indexOf(":");
    if (colon <= 0) throw new UsageError(`-H takes 'Name: value' (got ${JSON.stringify(header)})`);
    headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  return headers;
}

export const string = (values: Values, name: string): string | undefined => values[name] as string | undefined;
export const json = (value: unknown) => JSON.stringify(value);

export const endpointOf = (env: Record<string, string | undefined>) => env["ASYNCGATE_ENDPOINT"] ?? ENDPOINT_DEFAULT;

export function keysOf(env: Record<string, string | undefined>): { accessKey: string; secretKey: string } {
  const accessKey = env["ASYNCGATE_ACCESS_KEY"];
  const secretKey = env["ASYNCGATE_SECRET_KEY"];
  if (!accessKey || !secretKey)
    throw new UsageError("set ASYNCGATE_ACCESS_KEY and ASYNCGATE_SECRET_KEY (npm start prints local ones)");
  return { accessKey, secretKey };
}

function connectToOf(env: Record<string, string | undefined>): string | undefined {
  const url = new URL(endpointOf(env));
  const local = url.hostname === "localhost" || url.hostname.endsWith(".localhost");
  return env["ASYNCGATE_CONNECT_TO"] ?? (local ? `${url.protocol}//127.0.0.1:${url.port || 80}` : undefined);
}

export function clientFromEnv(env: Record<string, string | undefined>): AsyncgateClient {
  return new AsyncgateClient({
    endpoint: endpointOf(env),
    ...keysOf(env),
    connectTo: connectToOf(env),
    appHostSuffix: env["ASYNCGATE_APP_HOST_SUFFIX"],
  });
}
