/** What every CLI command gets and shares: its context, usage errors, flag parsers, the client from the environment. */
import { readFileSync } from "node:fs";
import type { ParseArgsConfig } from "node:util";
import { AsyncgateClient, AsyncgateError } from "../client/index";
import { parseDuration } from "../shared/duration";

type Options = NonNullable<ParseArgsConfig["options"]>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What a command gets: its parsed flags and arguments, a lazily made client, and the outputs. */
export interface Context {
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
  options?: Options;
  /** How many positional arguments it takes. */
  args: [min: number, max: number];
  run(context: Context): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

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

/** Whether an error means the gateway could not be reached (not an answer from it). */
function unreachable(error: unknown): boolean {
  return (
    !(error instanceof AsyncgateError) &&
    !(error instanceof UsageError) &&
    error instanceof Error &&
    !(error.name === "AbortError")
  );
}

function describeUnreachable(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/**
 * Runs `attempt` until it settles with an answer from the gateway, saying on stderr at once,
 * and on every retry, that the gateway cannot be reached.
 */
export async function whileUnreachable<T>(
  context: Context,
  what: string,
  attempt: () => Promise<T>,
  deadlineMs = Infinity,
): Promise<T> {
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (error) {
      if (!unreachable(error) || context.signal.aborted || Date.now() >= deadlineMs) throw error;
      const waitS = Math.max(0.001, Math.min(10, 2 ** failures, (deadlineMs - Date.now()) / 1000));
      context.err(
        `asyncgate: cannot reach ${endpointOf(context.env)} (${describeUnreachable(error)}) while ${what}; retrying in ${Math.round(waitS * 10) / 10} s`,
      );
      await new Promise((resolve) => setTimeout(resolve, waitS * 1000));
    }
  }
}

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
