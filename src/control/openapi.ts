/**
 * The OpenAPI 3.1 description of the gateway, served unauthenticated at `GET /openapi.json` on
 * the control host: every route (control API, the submission on app hosts, the seeds' front
 * doors), its schemas and its error codes. The app config schema is checked against the
 * config validation (app/config.ts) by test/unit/openapi.test.ts, so the two cannot drift.
 */
import { MAX_BODY_BYTES_LIMIT, MAX_INVOKE_PATH_CHARS, MAX_TIMEOUT_SECONDS, MAX_URL_CHARS } from "../config/app-config";
import { MAX_KEYS_PER_APP, PERMISSIONS } from "../auth/access-keys";

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema) => ({ "application/json": { schema } });
const nullable = (schema: Schema): Schema => ({ oneOf: [schema, { type: "null" }] });
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
const errors = (...statuses: number[]) =>
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

const name = { name: "name", in: "path", required: true, schema: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" } };
const taskId = { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-f]{32}$" } };
const signed = [{ qiniu: [] }];

const retrySchema: Schema = {
  type: "object",
  additionalProperties: false,
  description: "Cloud Tasks' retry model; durations in seconds.",
  properties: {
    max_attempts: { type: "integer", minimum: -1, maximum: 1000, default: 5, description: "Attempts in all, the first included; -1 = unlimited (needs max_retry_duration)." },
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
  name: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", description: "A DNS label; the app host is <name><APP_HOST_SUFFIX>." },
  origin: { type: "string", format: "uri", maxLength: MAX_URL_CHARS, description: "http(s) base URL the recorded requests are replayed against." },
  state: { type: "string", enum: ["Active", "Paused"], default: "Active" },
  retry: retrySchema,
  timeout: seconds("Seconds one attempt may take.", 0.001, MAX_TIMEOUT_SECONDS, 60),
  max_body_bytes: integer("Largest accepted request body.", 0, MAX_BODY_BYTES_LIMIT, 1_048_576),
  max_subscribers: integer("WebSocket subscribers at once.", 0, 32_000, 100),
  retention: seconds("Seconds a task (and its deduplication id) is kept.", 60, 31 * 86_400, 604_800),
  task_headers: { type: "string", enum: ["asyncgate", "cloudtasks", "appengine"], default: "asyncgate", description: "Metadata header names on delivery." },
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
};

const headerMap: Schema = { type: "object", additionalProperties: { type: "array", items: { type: "string" } } };

const schemas: Record<string, Schema> = {
  Error: {
    type: "object",
    required: ["error", "code", "req_id"],
    properties: {
      error: { type: "string", description: "What went wrong, for people." },
      code: { type: "string", anyOf: [{ enum: [...ERROR_CODES] }, { pattern: FIELD_ERROR_CODE }], description: "What went wrong, for programs." },
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
    properties: { ...appConfigProperties, host: { type: "string", description: "Ignored: echoed back by clients that PATCH what they GET." } },
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
        properties: { method: { type: "string" }, path: { type: "string" }, raw_query: { type: "string" }, header: headerMap, body: { type: "string", contentEncoding: "base64" } },
      },
      created_at: { type: "integer", description: "Unix nanoseconds." },
      state: { type: "integer", enum: [0, 1, 10, 11], description: "0 waiting, 1 doing, 10 success, 11 failed." },
      response: {
        type: "object",
        required: ["status_code", "header", "body"],
        properties: { status_code: { type: "integer" }, header: headerMap, body: { type: "string", contentEncoding: "base64" } },
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

const op = (summary: string, responses: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ summary, security: signed, responses, ...extra });
const ok = (description: string, schema: Schema, status = "200") => ({ [status]: { description, content: json(schema) } });
const body = (schema: Schema, required = true) => ({ requestBody: { required, content: json(schema) } });
const query = (queryName: string, schema: Schema, description?: string, required = false) => ({ name: queryName, in: "query", required, schema, ...(description ? { description } : {}) });

const taskPage: Schema = { type: "object", required: ["tasks", "cursor"], properties: { tasks: { type: "array", items: ref("TaskRecord") }, cursor: nullable({ type: "string" }) } };

const paths: Record<string, unknown> = {
  "/openapi.json": { get: { summary: "This document", security: [], responses: ok("OpenAPI 3.1", { type: "object" }) } },
  "/v1/apps": {
    post: op("Create an app (admin only)", { ...ok("Created; signing_secret shown once", { allOf: [ref("App"), { type: "object", required: ["signing_secret"], properties: { signing_secret: { type: "string", pattern: "^whsec_" } } }] }, "201"), ...errors(400, 401, 403, 409) }, body(ref("AppConfigInput"))),
    get: op(
      "List apps (Tencent's describe-queues filters)",
      { ...ok("A page", { type: "object", required: ["total", "page", "page_size", "apps"], properties: { total: { type: "integer" }, page: { type: "integer" }, page_size: { type: "integer" }, apps: { type: "array", items: ref("App") } } }), ...errors(400, 401, 403) },
      { parameters: [query("ids", { type: "string" }, "Comma-separated app names (≤ 100)"), query("state", { type: "string", enum: ["Active", "Paused"] }), query("page", { type: "integer", minimum: 1, default: 1 }), query("page_size", { type: "integer", minimum: 1, maximum: 100, default: 10 })] },
    ),
  },
  "/v1/apps/{name}": {
    parameters: [name],
    get: op("An app: config, delivery state, task counts", { ...ok("The app", { allOf: [ref("App"), { type: "object", required: ["stats", "delivery"], properties: { stats: { type: "object", additionalProperties: { type: "integer" } }, delivery: { type: "object" } } }] }), ...errors(401, 403, 404) }),
    patch: op("Change an app's config (any subset)", { ...ok("The new config", ref("App")), ...errors(400, 401, 403, 404) }, body(ref("AppConfigPatch"))),
    delete: op("Delete an app, its tasks and keys", { ...ok("Deleted", { type: "object", required: ["deleted"], properties: { deleted: { type: "string" } } }), ...errors(401, 403, 404) }),
  },
  "/v1/apps/{name}/stats": {
    parameters: [name],
    get: op("Counts, oldest waiting age, recent attempts, latency percentiles, limits, delivery state", { ...ok("Stats", { type: "object", required: ["app", "counts"], properties: { app: { type: "string" }, counts: { type: "object" }, latency_ms: { type: "object" } } }), ...errors(401, 403, 404) }),
  },
  "/v1/apps/{name}/redrive": {
    parameters: [name],
    post: op(
      "Retry failed tasks matching criteria, in bounded batches",
      { ...ok("Matched and retried", { type: "object", required: ["matched"], properties: { matched: { type: "integer" }, retried: { type: "integer" }, remaining: { type: "integer" } } }), ...errors(400, 401, 403, 404) },
      body({ type: "object", required: ["state"], properties: { state: { const: 11 }, since: { type: "number" }, until: { type: "number" }, status_code: { type: "integer" }, dry_run: { type: "boolean" } } }),
    ),
  },
  "/v1/apps/{name}/purge": {
    parameters: [name],
    post: op(
      "Delete waiting tasks, in bounded batches",
      { ...ok("Deleted", { type: "object", required: ["deleted"], properties: { deleted: { type: "integer" }, remaining: { type: "integer" } } }), ...errors(400, 401, 403, 404) },
      body({ type: "object", required: ["state"], properties: { state: { const: 0 }, until: { type: "number" } } }),
    ),
  },
  "/v1/apps/{name}/signing-secret/rotate": {
    parameters: [name],
    post: op("A new signing secret; the previous one signs beside it for 24 h", { ...ok("The new secret, shown once", { type: "object", required: ["signing_secret", "previous_valid_until"], properties: { signing_secret: { type: "string", pattern: "^whsec_" }, previous_valid_until: { type: "integer" } } }), ...errors(401, 403, 404) }),
  },
  "/v1/apps/{name}/keys": {
    parameters: [name],
    post: op(
      `Create an access key (at most ${MAX_KEYS_PER_APP} per app)`,
      { ...ok("The key; its secret_key is shown once", { allOf: [ref("AccessKey"), { type: "object", required: ["secret_key"], properties: { secret_key: { type: "string" } } }] }, "201"), ...errors(400, 401, 403, 404, 409) },
      body({ type: "object", required: ["permissions"], additionalProperties: false, properties: { permissions: { type: "array", minItems: 1, uniqueItems: true, items: { type: "string", enum: [...PERMISSIONS] } } } }),
    ),
    get: op("An app's access keys, never their secrets", { ...ok("Keys", { type: "object", required: ["keys"], properties: { keys: { type: "array", items: ref("AccessKey") } } }), ...errors(401, 403, 404) }),
  },
  "/v1/apps/{name}/keys/{accessKey}": {
    parameters: [name, { name: "accessKey", in: "path", required: true, schema: { type: "string" } }],
    delete: op("Revoke a key: it fails from the next request on", { ...ok("Revoked", { type: "object", required: ["revoked"], properties: { revoked: { type: "string" } } }), ...errors(401, 403, 404) }),
  },
  "/v1/meters": {
    get: op(
      "What the gateway spent since its isolates started (admin only): Durable Object requests, queue operations, SQLite rows, Worker invocations",
      {
        ...ok("Summed over the Worker's isolate and the named apps' objects, each isolate once", {
          type: "object",
          required: ["meters", "isolates", "apps"],
          properties: {
            meters: {
              type: "object",
              required: ["do_requests", "sql_rows_read", "sql_rows_written", "queue_writes", "queue_reads", "queue_acks", "queue_retries", "worker_invocations"],
              additionalProperties: { type: "integer", minimum: 0 },
            },
            isolates: { type: "integer", minimum: 1 },
            apps: { type: "array", items: { type: "string" } },
          },
        }),
        ...errors(400, 401, 403),
      },
      { parameters: [query("apps", { type: "string" }, "Comma-separated app names whose objects to include")] },
    ),
  },
  "/v1/tasks": {
    get: op(
      "List an app's tasks, newest first, without bodies; with `Upgrade: websocket`, the live result feed (SPEC §6: heartbeat `OK` every < 15 s)",
      { ...ok("A page; follow `cursor`", taskPage), "101": { description: "The live feed (WebSocket): task records with `seq`; `{type: hello}` first with since= or hello=1" }, ...errors(400, 401, 403, 404, 429) },
      {
        parameters: [
          query("app", name.schema, "The app", true),
          query("state", { type: "integer", enum: [0, 1, 10, 11] }),
          query("limit", { type: "integer", minimum: 1, maximum: 100, default: 20 }),
          query("cursor", { type: "string", pattern: "^[0-9a-f]{32}$" }),
          query("created_after", { type: "integer", minimum: 0 }, "Only tasks created at or after this (unix seconds)"),
          query("created_before", { type: "integer", minimum: 0 }, "Only tasks created before this (unix seconds)"),
          query("since", { type: "integer", minimum: 0 }, "Feed: replay results after this seq first"),
          query("hello", { type: "string", enum: ["1"] }, "Feed: send the hello frame"),
        ],
        security: [{ qiniu: [] }, { urlToken: [] }],
      },
    ),
  },
  "/v1/task/{id}": {
    parameters: [taskId],
    get: op("A task's record, request and response included", { ...ok("The record", ref("TaskRecord")), ...errors(401, 404) }),
    delete: op("Cancel a waiting task (→ 11, canceled)", { ...ok("The record", ref("TaskRecord")), ...errors(401, 404, 409) }),
  },
  "/v1/task/{id}/retry": {
    parameters: [taskId],
    post: op("Run a failed task again with a fresh attempt budget", { ...ok("The record", ref("TaskRecord")), ...errors(401, 404, 409) }),
  },
  "/{path}": {
    servers: [{ url: "https://{app}.async.example.com", variables: { app: { default: "myapp", description: "<app><APP_HOST_SUFFIX>" } } }],
    parameters: [{ name: "path", in: "path", required: true, schema: { type: "string" }, description: "Any path (and query): recorded and replayed to the origin" }],
    post: op(
      "Submit any request as a task (any method; POST shown). Control headers: Asyncgate-Delay, -Not-Before, -Deduplication-Id, -Retries, -Timeout, -Callback, -Fail-Fast",
      {
        ...ok("Accepted", { type: "object", required: ["id"], properties: { id: { type: "string", pattern: "^[0-9a-f]{32}$" } } }, "202"),
        ...ok("A duplicate of a task within retention (Asyncgate-Deduplicated: true)", { type: "object", required: ["id"], properties: { id: { type: "string" } } }),
        ...errors(400, 401, 403, 404, 413, 503, 507),
      },
      { requestBody: { required: false, content: { "*/*": { schema: {} } } } },
    ),
  },
  "/v2/{project_id}/fgs/functions/{function_urn}/invocations-async": {
    parameters: [
      { name: "project_id", in: "path", required: true, schema: { type: "string" } },
      { name: "function_urn", in: "path", required: true, schema: { type: "string" }, description: "urn:fss:<region>:<project>:function:<package>:<app>[:<version>]" },
    ],
    post: {
      summary: "FunctionGraph asynchronous invocation (seed 002): the JSON body is delivered to the app's invoke_path",
      security: [{ huaweiAkSk: [] }],
      requestBody: { required: true, content: json({ type: "object" }) },
      responses: {
        ...ok("Accepted", { type: "object", required: ["request_id"], properties: { request_id: { type: "string" } } }, "202"),
        ...Object.fromEntries(
          [400, 401, 403, 404, 500, 503].map((status) => [
            String(status),
            { description: "FunctionGraph error", content: json({ type: "object", required: ["error_code", "error_msg"], properties: { error_code: { type: "string", pattern: "^FSS\\.0\\d{3}$" }, error_msg: { type: "string" } } }) },
          ]),
        ),
      },
    },
  },
  "/docqueue": {
    get: {
      summary: "Tencent CI describe queues (seed 001): apps as queues, XML",
      security: [{ cosSignature: [] }],
      parameters: [query("queueIds", { type: "string" }), query("state", { type: "string", enum: ["Active", "Paused", ""] }), query("pageNumber", { type: "string" }), query("pageSize", { type: "string" })],
      responses: {
        "200": { description: "<Response> with RequestId, TotalCount, PageNumber, PageSize, QueueList…, NonExistPIDs", content: { "application/xml": { schema: { type: "string" } } } },
        "400": { description: "<Error> InvalidArgument", content: { "application/xml": { schema: { type: "string" } } } },
        "403": { description: "<Error> SignatureDoesNotMatch, RequestTimeTooSkewed or AccessDenied", content: { "application/xml": { schema: { type: "string" } } } },
      },
    },
  },
  "/docqueue/{queueId}": {
    parameters: [{ name: "queueId", in: "path", required: true, schema: { type: "string" }, description: "The app's name" }],
    put: {
      summary: "Tencent CI update queue (seed 001): State and NotifyConfig, XML",
      security: [{ cosSignature: [] }],
      requestBody: { required: true, content: { "application/xml": { schema: { type: "string", description: "<Request><Name/><QueueID/><State/><NotifyConfig><Url/><Type/><Event/><State/></NotifyConfig></Request>" } } } },
      responses: {
        "200": { description: "<Response><RequestId/><Queue>…</Queue></Response>", content: { "application/xml": { schema: { type: "string" } } } },
        "400": { description: "<Error> InvalidArgument or MalformedXML", content: { "application/xml": { schema: { type: "string" } } } },
        "403": { description: "<Error> SignatureDoesNotMatch, RequestTimeTooSkewed or AccessDenied", content: { "application/xml": { schema: { type: "string" } } } },
        "404": { description: "<Error> NoSuchResource", content: { "application/xml": { schema: { type: "string" } } } },
      },
    },
  },
};

export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "asyncgate",
    version: "0.1.0",
    description: "An asynchronous HTTP task gateway on Cloudflare Workers: submit any request to <app><APP_HOST_SUFFIX>, get a task id, read the outcome by poll, WebSocket or callback.",
  },
  servers: [{ url: "https://async.example.com", description: "The control host" }],
  paths,
  components: {
    schemas,
    securitySchemes: {
      qiniu: { type: "apiKey", in: "header", name: "Authorization", description: "Qiniu access token: `Qiniu <AccessKey>:<Sign>` (generateAccessTokenV2), with a signed X-Qiniu-Date" },
      urlToken: { type: "apiKey", in: "query", name: "token", description: "Feed upgrade only: `…&e=<deadline>&token=<AK>:<sign>` (Qiniu private URL)" },
      huaweiAkSk: { type: "apiKey", in: "header", name: "Authorization", description: "Huawei Cloud AK/SK: `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` with X-Sdk-Date" },
      cosSignature: { type: "apiKey", in: "header", name: "Authorization", description: "Tencent COS: `q-sign-algorithm=sha1&q-ak=…&q-signature=…`" },
    },
  },
} as const;
