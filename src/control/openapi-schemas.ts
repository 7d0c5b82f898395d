/**
 * The OpenAPI description's schemas and error codes (openapi.ts holds its paths): the app
 * config schema is checked against the config validation (config/app-config.ts) by
 * test/unit/openapi.test.ts, so the two cannot drift.
 */
import {
  MAX_BODY_BYTES_LIMIT,
  MAX_INVOKE_PATH_CHARS,
  MAX_PARTITION_SECONDS,
  MAX_SHARDS,
  MAX_TIMEOUT_SECONDS,
  MAX_URL_CHARS,
} from "../config/app-config";
import { PERMISSIONS } from "../auth/access-keys";

export type Schema = Record<string, unknown>;

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const json = (schema: Schema) => ({ "application/json": { schema } });
export const nullable = (schema: Schema): Schema => ({ oneOf: [schema, { type: "null" }] });
const seconds = (description: string, minimum: number, maximum: number, defaultValue: number): Schema => ({
  type: "number",
  minimum,
  maximum,
  default: defaultValue,
  description,
});
const integer = (description: string, minimum: number, maximum: number, defaultValue: number): Schema => ({
  type: "integer",
  minimum,
  maximum,
  default: defaultValue,
  description,
});

/**
 * Every error code the gateway answers with, by where it comes from. Field checks answer
 * `invalid_<field>` for the field at fault (e.g. `invalid_timeout`, `invalid_page_size`).
 */
export const ERROR_CODES = [
  // 400
  "invalid_json",
  "invalid_body",
  "invalid_header",
  "unsigned_control_header",
  "invalid_name",
  "invalid_origin",
  "invalid_state",
  "invalid_retry",
  "invalid_notify",
  "invalid_rate_limits",
  "invalid_circuit_breaker",
  "invalid_task_headers",
  "invalid_invoke_path",
  "invalid_no_retry_statuses",
  "invalid_permissions",
  "invalid_app",
  "invalid_since",
  "invalid_cursor",
  "invalid_created_after",
  "invalid_created_before",
  "invalid_ids",
  "invalid_status_code",
  "invalid_dry_run",
  "invalid_urn",
  "invalid_xml",
  "invalid_request",
  "invalid_queue_id",
  "unknown_field",
  "retention_too_short",
  "delay_exceeds_retention",
  "retries_exceed_retention",
  // 401
  "unauthorized",
  "bad_token",
  "request_expired",
  "date_required",
  "token_deadline_too_far",
  "https_required",
  // 403
  "forbidden",
  // 404
  "not_found",
  "app_not_found",
  "task_not_found",
  "key_not_found",
  // 405, 409, 413, 426, 429
  "method_not_allowed",
  "app_exists",
  // Between the Worker and a shard object only: the Worker then asks the app's own object (shards/submit-route.ts).
  "shard_not_open",
  "task_not_waiting",
  "task_not_failed",
  "too_many_keys",
  "body_too_large",
  "upgrade_required",
  "too_many_subscribers",
  // 5xx
  "unavailable",
  "keys_not_configured",
  "storage_full",
  "internal_error",
] as const;

/** Codes named for the field at fault, beside {@link ERROR_CODES}. */
export const FIELD_ERROR_CODE = "^invalid_[a-z_]+$";

const errorResponse = (description: string) => ({ description, content: json(ref("Error")) });
export const errors = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      String(status),
      errorResponse(
        {
          400: "Bad input (see `code`)",
          401: "Missing, malformed, stale or wrong credentials",
          403: "The key lacks the permission",
          404: "No such app, task or key",
          405: "Method not allowed on this path",
          409: "Conflict with the current state",
          413: "Body too large",
          429: "Too many subscribers",
          503: "Busy: retry after Retry-After",
          507: "The app's storage is full",
        }[status] ?? "Error",
      ),
    ]),
  );

export const name = {
  name: "name",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" },
};
export const taskId = { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-f]{32}$" } };
export const signed = [{ qiniu: [] }, { bearer: [] }];

const retrySchema: Schema = {
  type: "object",
  additionalProperties: false,
  description: "Cloud Tasks' retry model; durations in seconds.",
  properties: {
    max_attempts: {
      type: "integer",
      minimum: -1,
      maximum: 1000,
      default: 5,
      description: "Attempts in all, the first included; -1 = unlimited (needs max_retry_duration).",
    },
    min_backoff: seconds("Wait before the first retry.", 0, 86_400, 1),
    max_backoff: seconds("Longest wait between attempts.", 0, 86_400, 3600),
    max_doublings: integer("How many times the wait doubles before it grows linearly.", 0, 32, 16),
    max_retry_duration: seconds("Stop retrying this long after the first attempt; 0 = no limit.", 0, 31 * 86_400, 0),
    no_retry_statuses: {
      type: "array",
      maxItems: 50,
      items: { type: "integer", minimum: 100, maximum: 599 },
      default: [],
      description: "Non-2xx statuses that end the task at once.",
    },
  },
};

/** The app config as `POST /v1/apps` takes it (PATCH takes any subset). */
const appConfigProperties: Record<string, Schema> = {
  name: {
    type: "string",
    pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    description: "A DNS label; the app host is <name><APP_HOST_SUFFIX>.",
  },
  origin: {
    type: "string",
    format: "uri",
    maxLength: MAX_URL_CHARS,
    description: "http(s) base URL the recorded requests are replayed against.",
  },
  state: { type: "string", enum: ["Active", "Paused"], default: "Active" },
  retry: retrySchema,
  timeout: seconds("Seconds one attempt may take.", 0.001, MAX_TIMEOUT_SECONDS, 60),
  max_body_bytes: integer("Largest accepted request body.", 0, MAX_BODY_BYTES_LIMIT, 1_048_576),
  max_subscribers: integer("WebSocket subscribers at once.", 0, 32_000, 100),
  retention: seconds("Seconds a task (and its deduplication id) is kept.", 60, 31 * 86_400, 604_800),
  task_headers: {
    type: "string",
    enum: ["asyncgate", "cloudtasks", "appengine"],
    default: "asyncgate",
    description: "Metadata header names on delivery.",
  },
  invoke_path: {
    type: "string",
    pattern: "^/(?!/)[\\x21-\\x22\\x24-\\x7e]*$",
    maxLength: MAX_INVOKE_PATH_CHARS,
    default: "/",
    description: "Where FunctionGraph invocations are delivered (path and optional query).",
  },
  notify: {
    type: "object",
    additionalProperties: false,
    properties: {
      url: { ...nullable({ type: "string", format: "uri", maxLength: MAX_URL_CHARS }), default: null },
      events: { type: "array", items: { type: "string", enum: ["TaskFinish"] }, default: ["TaskFinish"] },
      state: { type: "string", enum: ["On", "Off"], default: "Off" },
    },
  },
  rate_limits: {
    type: "object",
    additionalProperties: false,
    properties: {
      max_dispatches_per_second: { ...nullable({ type: "number", minimum: 0.001, maximum: 500 }), default: null },
      max_burst_size: { ...nullable({ type: "integer", minimum: 1, maximum: 1000 }), default: null },
      max_concurrent_dispatches: { ...nullable({ type: "integer", minimum: 1, maximum: 5000 }), default: null },
    },
  },
  circuit_breaker: {
    type: "object",
    additionalProperties: false,
    properties: {
      failure_threshold: integer("Consecutive failed attempts that open the circuit; 0 = never.", 0, 1000, 0),
      cool_down: seconds("Seconds the circuit stays open before one probe.", 0.1, 86_400, 30),
    },
  },
  shards: integer(
    "Storage objects each time partition of the app's tasks is spread over; 1 keeps them in the app's own object.",
    1,
    MAX_SHARDS,
    1,
  ),
  partition: {
    ...integer(
      "Seconds of creation time one set of shard objects holds (whole minutes).",
      60,
      MAX_PARTITION_SECONDS,
      86_400,
    ),
    multipleOf: 60,
  },
};

export const headerMap: Schema = { type: "object", additionalProperties: { type: "array", items: { type: "string" } } };

export const schemas: Record<string, Schema> = {
  Error: {
    type: "object",
    required: ["error", "code", "req_id"],
    properties: {
      error: { type: "string", description: "What went wrong, for people." },
      code: {
        type: "string",
        anyOf: [{ enum: [...ERROR_CODES] }, { pattern: FIELD_ERROR_CODE }],
        description: "What went wrong, for programs.",
      },
      req_id: { type: "string" },
    },
  },
  AppConfigInput: {
    type: "object",
    additionalProperties: false,
    required: ["name", "origin"],
    properties: appConfigProperties,
  },
  AppConfigPatch: {
    type: "object",
    additionalProperties: false,
    properties: {
      ...appConfigProperties,
      host: { type: "string", description: "Ignored: echoed back by clients that PATCH what they GET." },
    },
  },
  App: {
    allOf: [
      { type: "object", required: Object.keys(appConfigProperties), properties: appConfigProperties },
      { type: "object", required: ["host"], properties: { host: { type: "string" } } },
    ],
  },
  TaskRecord: {
    type: "object",
    required: ["id", "req_id", "app", "request", "created_at", "state", "attempts", "error"],
    properties: {
      id: { type: "string", pattern: "^[0-9a-f]{32}$" },
      req_id: { type: "string" },
      app: { type: "string" },
      request: {
        type: "object",
        required: ["method", "path", "raw_query", "header", "body"],
        properties: {
          method: { type: "string" },
          path: { type: "string" },
          raw_query: { type: "string" },
          header: headerMap,
          body: { type: "string", contentEncoding: "base64" },
        },
      },
      created_at: { type: "integer", description: "Unix nanoseconds." },
      state: { type: "integer", enum: [0, 1, 10, 11], description: "0 waiting, 1 doing, 10 success, 11 failed." },
      response: {
        type: "object",
        required: ["status_code", "header", "body"],
        properties: {
          status_code: { type: "integer" },
          header: headerMap,
          body: { type: "string", contentEncoding: "base64" },
        },
      },
      exec_at: { type: "integer", description: "Unix nanoseconds of the last attempt's outcome." },
      attempts: { type: "integer", minimum: 0 },
      error: nullable({ type: "string" }),
      eta: { type: "number", description: "Unix seconds of the next attempt while waiting." },
      callback: { type: "string" },
      seq: { type: "integer", description: "On the live feed: the result's sequence number." },
    },
  },
  AccessKey: {
    type: "object",
    required: ["access_key", "permissions", "created_at"],
    properties: {
      access_key: { type: "string", pattern: "^[a-z0-9-]{1,63}\\.[0-9a-f]{24}$" },
      permissions: { type: "array", items: { type: "string", enum: [...PERMISSIONS] } },
      created_at: { type: "integer", description: "Unix seconds." },
    },
  },
};
