/**
 * App configuration (SPEC §7): defaults, validation and partial updates.
 * Everything is checked here, when an operator configures the app, so a task
 * never fails later because of a policy that could not work. Pure functions.
 */
import { retryLifetimeSeconds, type AppRetryPolicy } from "./retry-policy";
import type { ConfigRules } from "./rules";
import { badRequest } from "../http/errors";
import { APP_NAME } from "../http/hosts";

export interface NotifyConfig {
  /** Where finished task records are POSTed. @default null */
  url: string | null;
  /** @default ["TaskFinish"] */
  events: "TaskFinish"[];
  /** @default "Off" */
  state: "On" | "Off";
}

export type AppState = "Active" | "Paused";

/** Cloud Tasks' queue rate limits, enforced by the app's object when it hands out attempts. */
export interface RateLimits {
  /** Attempts started per second at most (a token bucket); null = unlimited. @default null */
  max_dispatches_per_second: number | null;
  /** The bucket's size: attempts that may start at once after a quiet spell; null = ceil(rate). @default null */
  max_burst_size: number | null;
  /** Attempts running at once at most; null = unlimited. @default null */
  max_concurrent_dispatches: number | null;
}

/** Stops delivering to an origin that keeps failing, then probes it with one attempt. */
export interface CircuitBreaker {
  /** Consecutive failed attempts (5xx, timeout, network error) that open the circuit; 0 = never. @default 0 */
  failure_threshold: number;
  /** Seconds the circuit stays open before one probe attempt. @default 30 */
  cool_down: number;
}

export interface AppConfig {
  name: string;
  /** Base URL the recorded requests are replayed against: http(s), no credentials. */
  origin: string;
  /** Paused: tasks are accepted and wait; no new delivery starts. @default "Active" */
  state: AppState;
  retry: AppRetryPolicy;
  /** Seconds one attempt may take, at most 900. @default 60 */
  timeout: number;
  /** Largest accepted request body. @default 1048576 */
  max_body_bytes: number;
  /** WebSocket subscribers per app. @default 100 */
  max_subscribers: number;
  /** Seconds a task (and its deduplication id) is kept. @default 604800 */
  retention: number;
  /**
   * Where FunctionGraph invocations (`POST /v2/…/invocations-async`) are delivered: a path,
   * optionally with a query, appended to the origin. @default "/"
   */
  invoke_path: string;
  /** Metadata header names on delivery: ours, Cloud Tasks' HTTP targets' or App Engine's. @default "asyncgate" */
  task_headers: "asyncgate" | "cloudtasks" | "appengine";
  notify: NotifyConfig;
  rate_limits: RateLimits;
  circuit_breaker: CircuitBreaker;
  /**
   * Storage objects a time partition of the app's tasks is spread over (1-64; may grow or
   * shrink: a task stays where it was stored). 1 keeps every task in the app's own object.
   * @default 1
   */
  shards: number;
  /** Seconds of task creation time one set of shard objects holds: whole minutes, 60 to 31 days. @default 86400 */
  partition: number;
}

/** Largest body a task may carry: one SQLite value is at most 2 MB, headers included. */
export const MAX_BODY_BYTES_LIMIT = 1_800_000;
export const MAX_TIMEOUT_SECONDS = 900;

export function defaultConfig(name: string, origin: string): AppConfig {
  return {
    name,
    origin,
    state: "Active",
    retry: {
      max_attempts: 5,
      min_backoff: 1,
      max_backoff: 3600,
      max_doublings: 16,
      max_retry_duration: 0,
      no_retry_statuses: [],
    },
    timeout: 60,
    max_body_bytes: 1_048_576,
    max_subscribers: 100,
    retention: 604_800,
    task_headers: "asyncgate",
    invoke_path: "/",
    notify: { url: null, events: ["TaskFinish"], state: "Off" },
    rate_limits: { max_dispatches_per_second: null, max_burst_size: null, max_concurrent_dispatches: null },
    circuit_breaker: { failure_threshold: 0, cool_down: 30 },
    shards: 1,
    partition: 86_400,
  };
}

export const MAX_SHARDS = 64;
/** A partition is whole minutes (task ids carry its length in minutes: shared/task-id.ts). */
export const MAX_PARTITION_SECONDS = 31 * 86_400;

/** Longest URL accepted for an origin, a callback or a notify url. */
export const MAX_URL_CHARS = 2048;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A new app's config from a `POST /v1/apps` body. */
export function createConfig(input: unknown, rules: ConfigRules): AppConfig {
  if (!isRecord(input)) throw badRequest("invalid_body", "expected a JSON object");
  const { name, origin } = input;
  if (typeof name !== "string" || !APP_NAME.test(name)) {
    throw badRequest("invalid_name", "name must be a DNS label: lowercase letters, digits and '-', 1-63 characters");
  }
  if (typeof origin !== "string") throw badRequest("invalid_origin", "origin is required");
  return applyPatch(defaultConfig(name, origin), { ...input, name: undefined }, rules, true);
}

/** `current` with a `PATCH /v1/apps/<name>` body applied; every field validated. */
export function applyPatch(current: AppConfig, input: unknown, rules: ConfigRules, creating = false): AppConfig {
  if (!isRecord(input)) throw badRequest("invalid_body", "expected a JSON object");
  const next: AppConfig = structuredClone(current);
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    switch (key) {
      case "name":
        if (value !== current.name) throw badRequest("invalid_name", "an app cannot be renamed");
        break;
      case "origin":
        next.origin = checkOrigin(value, rules);
        break;
      case "state":
        if (value !== "Active" && value !== "Paused")
          throw badRequest("invalid_state", "state must be Active or Paused");
        next.state = value;
        break;
      case "retry":
        next.retry = patchRetry(next.retry, value);
        break;
      case "timeout":
        next.timeout = seconds("timeout", value, { min: 0.001, max: MAX_TIMEOUT_SECONDS });
        break;
      case "max_body_bytes":
        next.max_body_bytes = integer("max_body_bytes", value, 0, MAX_BODY_BYTES_LIMIT);
        break;
      case "max_subscribers":
        next.max_subscribers = integer("max_subscribers", value, 0, 32_000);
        break;
      case "retention":
        next.retention = seconds("retention", value, { min: 60, max: 31 * 86_400 });
        break;
      case "task_headers":
        if (value !== "asyncgate" && value !== "cloudtasks" && value !== "appengine") {
          throw badRequest("invalid_task_headers", "task_headers must be asyncgate, cloudtasks or appengine");
        }
        next.task_headers = value;
        break;
      case "invoke_path":
        next.invoke_path = checkInvokePath(value);
        break;
      case "notify":
        next.notify = patchNotify(next.notify, value, rules);
        break;
      case "rate_limits":
        next.rate_limits = patchRateLimits(next.rate_limits, value);
        break;
      case "circuit_breaker":
        next.circuit_breaker = patchCircuitBreaker(next.circuit_breaker, value);
        break;
      case "shards":
        next.shards = integer("shards", value, 1, MAX_SHARDS);
        break;
      case "partition":
        next.partition = integer("partition", value, 60, MAX_PARTITION_SECONDS);
        if (next.partition % 60 !== 0)
          throw badRequest("invalid_partition", "partition must be whole minutes (seconds, a multiple of 60)");
        break;
      case "host":
        break; // echoed back by clients that PUT what they GET; derived, never stored
      default:
        throw badRequest("unknown_field", `unknown field: ${key}`);
    }
  }
  if (creating) next.origin = checkOrigin(next.origin, rules);
  const lifetime = retryLifetimeSeconds(next.retry);
  if (lifetime >= next.retention) {
    // A task still retrying when its retention ends would expire unfinished: refuse the policy now.
    throw badRequest(
      "retention_too_short",
      `the retry policy can keep a task retrying for ${Math.ceil(lifetime)} s, beyond retention (${next.retention} s): raise retention or shorten retry`,
    );
  }
  return next;
}

/**
 * A stored config as the current version reads it: fields added since it was stored get
 * their defaults (configs live in each app's object, written by older versions too).
 */
export function normalizeConfig(stored: AppConfig): AppConfig {
  const defaults = defaultConfig(stored.name, stored.origin);
  return {
    ...defaults,
    ...stored,
    retry: { ...defaults.retry, ...stored.retry },
    notify: { ...defaults.notify, ...stored.notify },
    rate_limits: { ...defaults.rate_limits, ...stored.rate_limits },
    circuit_breaker: { ...defaults.circuit_breaker, ...stored.circuit_breaker },
  };
}

function patchRetry(current: AppRetryPolicy, value: unknown): AppRetryPolicy {
  if (!isRecord(value)) throw badRequest("invalid_retry", "retry must be an object");
  const next = { ...current };
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case "max_attempts":
        next.max_attempts = field === -1 ? -1 : integer("retry.max_attempts", field, 1, 1000);
        break;
      case "min_backoff":
        next.min_backoff = seconds("retry.min_backoff", field, { min: 0, max: 86_400 });
        break;
      case "max_backoff":
        next.max_backoff = seconds("retry.max_backoff", field, { min: 0, max: 86_400 });
        break;
      case "max_doublings":
        next.max_doublings = integer("retry.max_doublings", field, 0, 32);
        break;
      case "max_retry_duration":
        next.max_retry_duration = seconds("retry.max_retry_duration", field, { min: 0, max: 31 * 86_400 });
        break;
      case "no_retry_statuses":
        if (
          !Array.isArray(field) ||
          field.length > 50 ||
          field.some(
            (status) =>
              typeof status !== "number" ||
              !Number.isInteger(status) ||
              status < 100 ||
              status > 599 ||
              (status >= 200 && status <= 299),
          )
        ) {
          throw badRequest(
            "invalid_no_retry_statuses",
            "retry.no_retry_statuses must be a list of up to 50 non-2xx HTTP statuses (100-599)",
          );
        }
        next.no_retry_statuses = [...new Set(field as number[])].sort((a, b) => a - b);
        break;
      default:
        throw badRequest("unknown_field", `unknown field: retry.${key}`);
    }
  }
  if (next.max_backoff < next.min_backoff) {
    throw badRequest("invalid_retry", "retry.max_backoff must be at least retry.min_backoff");
  }
  if (next.max_attempts === -1 && next.max_retry_duration === 0) {
    throw badRequest("invalid_retry", "unlimited max_attempts needs a max_retry_duration");
  }
  return next;
}

function patchRateLimits(current: RateLimits, value: unknown): RateLimits {
  if (!isRecord(value)) throw badRequest("invalid_rate_limits", "rate_limits must be an object");
  const next = { ...current };
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case "max_dispatches_per_second":
        next.max_dispatches_per_second =
          field === null ? null : seconds("rate_limits.max_dispatches_per_second", field, { min: 0.001, max: 500 });
        break;
      case "max_burst_size":
        next.max_burst_size = field === null ? null : integer("rate_limits.max_burst_size", field, 1, 1000);
        break;
      case "max_concurrent_dispatches":
        next.max_concurrent_dispatches =
          field === null ? null : integer("rate_limits.max_concurrent_dispatches", field, 1, 5000);
        break;
      default:
        throw badRequest("unknown_field", `unknown field: rate_limits.${key}`);
    }
  }
  return next;
}

function patchCircuitBreaker(current: CircuitBreaker, value: unknown): CircuitBreaker {
  if (!isRecord(value)) throw badRequest("invalid_circuit_breaker", "circuit_breaker must be an object");
  const next = { ...current };
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case "failure_threshold":
        next.failure_threshold = integer("circuit_breaker.failure_threshold", field, 0, 1000);
        break;
      case "cool_down":
        next.cool_down = seconds("circuit_breaker.cool_down", field, { min: 0.1, max: 86_400 });
        break;
      default:
        throw badRequest("unknown_field", `unknown field: circuit_breaker.${key}`);
    }
  }
  return next;
}

function patchNotify(current: NotifyConfig, value: unknown, rules: ConfigRules): NotifyConfig {
  if (!isRecord(value)) throw badRequest("invalid_notify", "notify must be an object");
  const next: NotifyConfig = { ...current, events: [...current.events] };
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case "url":
        next.url = field === null ? null : checkOrigin(field, rules, "notify.url");
        break;
      case "events":
        if (!Array.isArray(field) || field.some((event) => event !== "TaskFinish")) {
          throw badRequest("invalid_notify", 'notify.events may only contain "TaskFinish"');
        }
        next.events = field as "TaskFinish"[];
        break;
      case "state":
        if (field !== "On" && field !== "Off") throw badRequest("invalid_notify", "notify.state must be On or Off");
        next.state = field;
        break;
      default:
        throw badRequest("unknown_field", `unknown field: notify.${key}`);
    }
  }
  if (next.state === "On" && !next.url) throw badRequest("invalid_notify", "notify.url is required when notify is On");
  return next;
}

/** Longest invoke_path: a path and query, not a document. */
export const MAX_INVOKE_PATH_CHARS = 1024;

/** `/path[?query]`: printable ASCII without spaces or a fragment, as it goes on the request line. */
function checkInvokePath(value: unknown): string {
  if (
    typeof value !== "string" ||
    !value.startsWith("/") ||
    value.startsWith("//") ||
    value.length > MAX_INVOKE_PATH_CHARS ||
    !/^[\x21-\x7e]+$/.test(value) ||
    value.includes("#")
  ) {
    throw badRequest(
      "invalid_invoke_path",
      `invoke_path must be a path starting with a single '/', optionally with a query, at most ${MAX_INVOKE_PATH_CHARS} printable characters without spaces or '#'`,
    );
  }
  return value;
}

/** An invoke_path as a recorded request's path and raw query. */
export function splitInvokePath(invokePath: string): { path: string; raw_query: string } {
  const mark = invokePath.indexOf("?");
  return mark === -1
    ? { path: invokePath, raw_query: "" }
    : { path: invokePath.slice(0, mark), raw_query: invokePath.slice(mark) };
}

function seconds(field: string, value: unknown, range: { min: number; max: number }): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < range.min || value > range.max) {
    throw badRequest(
      `invalid_${field.split(".").pop()}`,
      `${field} must be a number of seconds in [${range.min}, ${range.max}]`,
    );
  }
  return value;
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw badRequest(`invalid_${field.split(".").pop()}`, `${field} must be an integer in [${min}, ${max}]`);
  }
  return value;
}

/**
 * An origin is an http(s) URL without credentials. Production Workers cannot fetch IP
 * literals or private networks, so unless local development allows it such origins are
 * refused here rather than failing every delivery later.
 */
export function checkOrigin(value: unknown, rules: ConfigRules, field = "origin"): string {
  const code = `invalid_${field.split(".").pop()}`;
  if (typeof value !== "string") throw badRequest(code, `${field} must be a URL string`);
  if (value.length > MAX_URL_CHARS) throw badRequest(code, `${field} is longer than ${MAX_URL_CHARS} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badRequest(code, `${field} is not a valid URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw badRequest(code, `${field} must be http or https`);
  if (url.username || url.password) throw badRequest(code, `${field} must not contain credentials`);
  const isOrigin = field === "origin";
  if (isOrigin && (url.search || url.hash)) throw badRequest(code, `${field} must not have a query or fragment`);
  if (isGatewayHost(url, rules.gateway))
    throw badRequest(code, `${field} must not be the gateway itself (${url.host})`);
  if (!rules.allowPrivateOrigins && isPrivateHost(url.hostname)) {
    throw badRequest(
      code,
      `${field} host ${url.hostname} is an IP literal or private name, which deployed Workers cannot fetch`,
    );
  }
  // An origin is a base the recorded path is appended to: keep no trailing slash.
  return isOrigin ? url.toString().replace(/\/$/, "") : url.toString();
}

/** `LOCALHOST.` → `localhost`: a trailing dot names the same host (an absolute DNS name). */
const normalHostname = (hostname: string) => hostname.toLowerCase().replace(/\.+$/, "");

function isGatewayHost(url: URL, gateway: ConfigRules["gateway"]): boolean {
  const host = normalHostname(url.hostname);
  const suffix = normalHostname(gateway.appHostSuffix);
  if (suffix && (host.endsWith(suffix) || host === suffix.replace(/^\./, ""))) return true;
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return gateway.controlHosts.some((control) => {
    if (!control) return false;
    const parsed = URL.parse(`${url.protocol}//${control}`);
    return parsed !== null && normalHostname(parsed.hostname) === host && (parsed.port || port) === port;
  });
}

function isPrivateHost(hostname: string): boolean {
  const host = normalHostname(hostname);
  if (host.startsWith("[") || /^\d+\.\d+\.\d+\.\d+$/.test(host) || /^\d+$/.test(host)) return true;
  if (!host.includes(".")) return true;
  return [".localhost", ".local", ".internal", ".lan", ".home.arpa"].some((suffix) => host.endsWith(suffix));
}
