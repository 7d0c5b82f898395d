/**
 * The OpenAPI 3.1 description of the gateway, served unauthenticated at `GET /openapi.json` on
 * the control host: every route (control API, the submission on app hosts, the seeds' front
 * doors), with the schemas and error codes of openapi-schemas.ts.
 */
import { MAX_KEYS_PER_APP, PERMISSIONS } from "../auth/access-keys";
import { errors, json, name, nullable, ref, schemas, signed, taskId, type Schema } from "./openapi-schemas";

export { ERROR_CODES, FIELD_ERROR_CODE } from "./openapi-schemas";

const op = (summary: string, responses: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  summary,
  security: signed,
  responses,
  ...extra,
});
const ok = (description: string, schema: Schema, status = "200") => ({
  [status]: { description, content: json(schema) },
});
const body = (schema: Schema, required = true) => ({ requestBody: { required, content: json(schema) } });
const query = (queryName: string, schema: Schema, description?: string, required = false) => ({
  name: queryName,
  in: "query",
  required,
  schema,
  ...(description ? { description } : {}),
});

const taskPage: Schema = {
  type: "object",
  required: ["tasks", "cursor"],
  properties: { tasks: { type: "array", items: ref("TaskRecord") }, cursor: nullable({ type: "string" }) },
};

const paths: Record<string, unknown> = {
  "/": {
    get: {
      summary: "Where things are: a browser (Accept: text/html) is sent to the console, anything else gets the links",
      security: [],
      responses: {
        ...ok("The console's and this document's paths", {
          type: "object",
          required: ["console", "openapi"],
          properties: { name: { type: "string" }, console: { type: "string" }, openapi: { type: "string" } },
        }),
        "302": { description: "To /console (a browser)" },
      },
    },
  },
  "/openapi.json": {
    get: { summary: "This document", security: [], responses: ok("OpenAPI 3.1", { type: "object" }) },
  },
  "/v1/apps": {
    post: op(
      "Create an app (admin only)",
      {
        ...ok(
          "Created; signing_secret shown once",
          {
            allOf: [
              ref("App"),
              {
                type: "object",
                required: ["signing_secret"],
                properties: { signing_secret: { type: "string", pattern: "^whsec_" } },
              },
            ],
          },
          "201",
        ),
        ...errors(400, 401, 403, 409),
      },
      body(ref("AppConfigInput")),
    ),
    get: op(
      "List apps (Tencent's describe-queues filters)",
      {
        ...ok("A page", {
          type: "object",
          required: ["total", "page", "page_size", "apps"],
          properties: {
            total: { type: "integer" },
            page: { type: "integer" },
            page_size: { type: "integer" },
            apps: { type: "array", items: ref("App") },
          },
        }),
        ...errors(400, 401, 403),
      },
      {
        parameters: [
          query("ids", { type: "string" }, "Comma-separated app names (≤ 100)"),
          query("state", { type: "string", enum: ["Active", "Paused"] }),
          query("page", { type: "integer", minimum: 1, default: 1 }),
          query("page_size", { type: "integer", minimum: 1, maximum: 100, default: 10 }),
        ],
      },
    ),
  },
  "/v1/apps/{name}": {
    parameters: [name],
    get: op("An app: config, delivery state, task counts", {
      ...ok("The app", {
        allOf: [
          ref("App"),
          {
            type: "object",
            required: ["stats", "delivery"],
            properties: {
              stats: { type: "object", additionalProperties: { type: "integer" } },
              delivery: { type: "object" },
            },
          },
        ],
      }),
      ...errors(401, 403, 404),
    }),
    patch: op(
      "Change an app's config (any subset)",
      { ...ok("The new config", ref("App")), ...errors(400, 401, 403, 404) },
      body(ref("AppConfigPatch")),
    ),
    delete: op("Delete an app, its tasks and keys", {
      ...ok("Deleted", { type: "object", required: ["deleted"], properties: { deleted: { type: "string" } } }),
      ...errors(401, 403, 404),
    }),
  },
  "/v1/apps/{name}/stats": {
    parameters: [name],
    get: op("Counts, oldest waiting age, recent attempts, latency percentiles, limits, delivery state", {
      ...ok("Stats", {
        type: "object",
        required: ["app", "counts"],
        properties: { app: { type: "string" }, counts: { type: "object" }, latency_ms: { type: "object" } },
      }),
      ...errors(401, 403, 404),
    }),
  },
  "/v1/apps/{name}/redrive": {
    parameters: [name],
    post: op(
      "Retry failed tasks matching criteria, in bounded batches",
      {
        ...ok("Matched and retried", {
          type: "object",
          required: ["matched"],
          properties: { matched: { type: "integer" }, retried: { type: "integer" }, remaining: { type: "integer" } },
        }),
        ...errors(400, 401, 403, 404),
      },
      body({
        type: "object",
        required: ["state"],
        properties: {
          state: { const: 11 },
          since: { type: "number" },
          until: { type: "number" },
          status_code: { type: "integer" },
          dry_run: { type: "boolean" },
        },
      }),
    ),
  },
  "/v1/apps/{name}/purge": {
    parameters: [name],
    post: op(
      "Delete waiting tasks, in bounded batches",
      {
        ...ok("Deleted", {
          type: "object",
          required: ["deleted"],
          properties: { deleted: { type: "integer" }, remaining: { type: "integer" } },
        }),
        ...errors(400, 401, 403, 404),
      },
      body({ type: "object", required: ["state"], properties: { state: { const: 0 }, until: { type: "number" } } }),
    ),
  },
  "/v1/apps/{name}/signing-secret/rotate": {
    parameters: [name],
    post: op("A new signing secret; the previous one signs beside it for 24 h", {
      ...ok("The new secret, shown once", {
        type: "object",
        required: ["signing_secret", "previous_valid_until"],
        properties: {
          signing_secret: { type: "string", pattern: "^whsec_" },
          previous_valid_until: { type: "integer" },
        },
      }),
      ...errors(401, 403, 404),
    }),
  },
  "/v1/apps/{name}/keys": {
    parameters: [name],
    post: op(
      `Create an access key (at most ${MAX_KEYS_PER_APP} per app)`,
      {
        ...ok(
          "The key; its secret_key is shown once",
          {
            allOf: [
              ref("AccessKey"),
              { type: "object", required: ["secret_key"], properties: { secret_key: { type: "string" } } },
            ],
          },
          "201",
        ),
        ...errors(400, 401, 403, 404, 409),
      },
      body({
        type: "object",
        required: ["permissions"],
        additionalProperties: false,
        properties: {
          permissions: {
            type: "array",
            minItems: 1,
            uniqueItems: true,
            items: { type: "string", enum: [...PERMISSIONS] },
          },
        },
      }),
    ),
    get: op("An app's access keys, never their secrets", {
      ...ok("Keys", {
        type: "object",
        required: ["keys"],
        properties: { keys: { type: "array", items: ref("AccessKey") } },
      }),
      ...errors(401, 403, 404),
    }),
  },
  "/v1/apps/{name}/keys/{accessKey}": {
    parameters: [name, { name: "accessKey", in: "path", required: true, schema: { type: "string" } }],
    delete: op("Revoke a key: it fails from the next request on", {
      ...ok("Revoked", { type: "object", required: ["revoked"], properties: { revoked: { type: "string" } } }),
      ...errors(401, 403, 404),
    }),
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
              required: [
                "do_requests",
                "sql_rows_read",
                "sql_rows_written",
                "queue_writes",
                "queue_reads",
                "queue_acks",
                "queue_retries",
                "worker_invocations",
                "retention_rows_written",
                "retention_tasks",
              ],
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
      {
        ...ok("A page; follow `cursor`", taskPage),
        "101": {
          description:
            "The live feed (WebSocket): task records with `seq`; `{type: hello}` first with since= or hello=1. Acknowledge results with the text `ACK <seq>`: past 8 MiB unacknowledged the feed closes with 4413, and a since= replay waits after 1 MiB",
        },
        ...errors(400, 401, 403, 404, 429),
      },
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
        security: [{ qiniu: [] }, { bearer: [] }, { urlToken: [] }],
      },
    ),
  },
  "/v1/task/{id}": {
    parameters: [taskId],
    get: op("A task's record, request and response included", {
      ...ok("The record", ref("TaskRecord")),
      ...errors(401, 404),
    }),
    delete: op("Cancel a waiting task (→ 11, canceled)", {
      ...ok("The record", ref("TaskRecord")),
      ...errors(401, 404, 409),
    }),
  },
  "/v1/task/{id}/retry": {
    parameters: [taskId],
    post: op("Run a failed task again with a fresh attempt budget", {
      ...ok("The record", ref("TaskRecord")),
      ...errors(401, 404, 409),
    }),
  },
  "/{path}": {
    servers: [
      {
        url: "https://{app}.async.example.com",
        variables: { app: { default: "myapp", description: "<app><APP_HOST_SUFFIX>" } },
      },
    ],
    parameters: [
      {
        name: "path",
        in: "path",
        required: true,
        schema: { type: "string" },
        description: "Any path (and query): recorded and replayed to the origin",
      },
    ],
    post: op(
      "Submit any request as a task (any method; POST shown). Control headers: Asyncgate-Delay, -Not-Before, -Deduplication-Id, -Retries, -Timeout, -Callback, -Fail-Fast",
      {
        ...ok(
          "Accepted",
          { type: "object", required: ["id"], properties: { id: { type: "string", pattern: "^[0-9a-f]{32}$" } } },
          "202",
        ),
        ...ok("A duplicate of a task within retention (Asyncgate-Deduplicated: true)", {
          type: "object",
          required: ["id"],
          properties: { id: { type: "string" } },
        }),
        ...errors(400, 401, 403, 404, 413, 503, 507),
      },
      { requestBody: { required: false, content: { "*/*": { schema: {} } } } },
    ),
  },
  "/v2/{project_id}/fgs/functions/{function_urn}/invocations-async": {
    parameters: [
      { name: "project_id", in: "path", required: true, schema: { type: "string" } },
      {
        name: "function_urn",
        in: "path",
        required: true,
        schema: { type: "string" },
        description: "urn:fss:<region>:<project>:function:<package>:<app>[:<version>]",
      },
    ],
    post: {
      summary: "FunctionGraph asynchronous invocation (seed 002): the JSON body is delivered to the app's invoke_path",
      security: [{ huaweiAkSk: [] }],
      requestBody: { required: true, content: json({ type: "object" }) },
      responses: {
        ...ok(
          "Accepted",
          { type: "object", required: ["request_id"], properties: { request_id: { type: "string" } } },
          "202",
        ),
        ...Object.fromEntries(
          [400, 401, 403, 404, 500, 503].map((status) => [
            String(status),
            {
              description: "FunctionGraph error",
              content: json({
                type: "object",
                required: ["error_code", "error_msg"],
                properties: {
                  error_code: { type: "string", pattern: "^FSS\\.0\\d{3}$" },
                  error_msg: { type: "string" },
                },
              }),
            },
          ]),
        ),
      },
    },
  },
  "/docqueue": {
    get: {
      summary: "Tencent CI describe queues (seed 001): apps as queues, XML",
      security: [{ cosSignature: [] }],
      parameters: [
        query("queueIds", { type: "string" }),
        query("state", { type: "string", enum: ["Active", "Paused", ""] }),
        query("pageNumber", { type: "string" }),
        query("pageSize", { type: "string" }),
      ],
      responses: {
        "200": {
          description: "<Response> with RequestId, TotalCount, PageNumber, PageSize, QueueList…, NonExistPIDs",
          content: { "application/xml": { schema: { type: "string" } } },
        },
        "400": {
          description: "<Error> InvalidArgument",
          content: { "application/xml": { schema: { type: "string" } } },
        },
        "403": {
          description: "<Error> SignatureDoesNotMatch, RequestTimeTooSkewed or AccessDenied",
          content: { "application/xml": { schema: { type: "string" } } },
        },
      },
    },
  },
  "/docqueue/{queueId}": {
    parameters: [
      { name: "queueId", in: "path", required: true, schema: { type: "string" }, description: "The app's name" },
    ],
    put: {
      summary: "Tencent CI update queue (seed 001): State and NotifyConfig, XML",
      security: [{ cosSignature: [] }],
      requestBody: {
        required: true,
        content: {
          "application/xml": {
            schema: {
              type: "string",
              description:
                "<Request><Name/><QueueID/><State/><NotifyConfig><Url/><Type/><Event/><State/></NotifyConfig></Request>",
            },
          },
        },
      },
      responses: {
        "200": {
          description: "<Response><RequestId/><Queue>…</Queue></Response>",
          content: { "application/xml": { schema: { type: "string" } } },
        },
        "400": {
          description: "<Error> InvalidArgument or MalformedXML",
          content: { "application/xml": { schema: { type: "string" } } },
        },
        "403": {
          description: "<Error> SignatureDoesNotMatch, RequestTimeTooSkewed or AccessDenied",
          content: { "application/xml": { schema: { type: "string" } } },
        },
        "404": {
          description: "<Error> NoSuchResource",
          content: { "application/xml": { schema: { type: "string" } } },
        },
      },
    },
  },
};

export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "asyncgate",
    version: "0.1.0",
    description:
      "An asynchronous HTTP task gateway on Cloudflare Workers: submit any request to <app><APP_HOST_SUFFIX>, get a task id, read the outcome by poll, WebSocket or callback.",
  },
  servers: [{ url: "https://async.example.com", description: "The control host" }],
  paths,
  components: {
    schemas,
    securitySchemes: {
      qiniu: {
        type: "apiKey",
        in: "header",
        name: "Authorization",
        description:
          "Qiniu access token: `Qiniu <AccessKey>:<Sign>` (generateAccessTokenV2), with a signed X-Qiniu-Date",
      },
      bearer: {
        type: "http",
        scheme: "bearer",
        description:
          "The key pair itself, `Bearer <AccessKey>:<SecretKey>`, for clients that can send nothing else: over HTTPS only (or to a loopback host); no date, nothing signed",
      },
      urlToken: {
        type: "apiKey",
        in: "query",
        name: "token",
        description: "Feed upgrade only: `…&e=<deadline>&token=<AK>:<sign>` (Qiniu private URL)",
      },
      huaweiAkSk: {
        type: "apiKey",
        in: "header",
        name: "Authorization",
        description: "Huawei Cloud AK/SK: `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` with X-Sdk-Date",
      },
      cosSignature: {
        type: "apiKey",
        in: "header",
        name: "Authorization",
        description: "Tencent COS: `q-sign-algorithm=sha1&q-ak=…&q-signature=…`",
      },
    },
  },
} as const;
