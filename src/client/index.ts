/**
 * asyncgate's TypeScript client, for Node ≥ 22 and browsers (Web Crypto, fetch, WebSocket).
 *
 *   const gateway = new AsyncgateClient({ endpoint: "https://async.example.com", accessKey, secretKey });
 *   const { id } = await gateway.submit("shop", "/orders", { body: JSON.stringify(order) });
 *   const task = await gateway.waitForTask(id);
 *   for await (const result of gateway.subscribe("shop")) console.log(result.seq, result.state);
 *   await gateway.apps.create({ name: "shop", origin: "https://backend.example.com" });
 *   for await (const task of gateway.listTasks("shop", { state: TaskState.Failed })) await gateway.retry(task.id);
 */
import { AsyncgateError } from "./errors";
import { subscription, type SubscribeOptions, type TaskResult } from "./subscription";
import { connectToTransport, fetchTransport, type Transport } from "./transport";
import type { AppConfig } from "../config/app-config";
import { formatQiniuDate, qiniuAuthorization } from "../auth/qiniu";
import { signUrl } from "../auth/url-token";
import { base64ToBytes } from "../shared/encoding";
import type { TaskRecord } from "../shared/types";

export { AsyncgateError } from "./errors";
export type { SubscribeOptions, TaskResult } from "./subscription";
export { TaskState } from "../shared/types";
export type { TaskRecord } from "../shared/types";
export type { AppConfig } from "../config/app-config";

/** An app as the control API shows it: its config and its app host. */
export type App = AppConfig & { host: string };
/** What create and update take: any fields, nested policies in part (the rest keep their values). */
export type AppConfigPatch = {
  [K in keyof AppConfig]?: AppConfig[K] extends unknown[]
    ? AppConfig[K]
    : AppConfig[K] extends object
      ? Partial<AppConfig[K]>
      : AppConfig[K];
};
export type AppDetails = App & { stats: Record<string, number>; delivery: Record<string, unknown> };
export type Permission = "submit" | "query" | "subscribe" | "manage";
export interface AccessKey {
  access_key: string;
  permissions: Permission[];
  created_at: number;
}
export interface AppListFilter {
  ids?: string[];
  state?: "Active" | "Paused";
  page?: number;
  pageSize?: number;
}
export interface ListTasksOptions {
  /** Only tasks in this state (0, 1, 10 or 11). */
  state?: number;
  /** Only tasks created at or after this (a Date, or unix seconds). */
  createdAfter?: Date | number;
  /** Only tasks created before this (a Date, or unix seconds). */
  createdBefore?: Date | number;
  /** Records per request (≤ 100); the iterator pages on by itself. @default 100 */
  pageSize?: number;
  signal?: AbortSignal;
}

const unixSeconds = (time: Date | number): number => Math.floor(time instanceof Date ? time.getTime() / 1000 : time);

/** A body field of a task record (base64) as bytes. */
export function decodeBody(base64: string): Uint8Array {
  return base64ToBytes(base64);
}

/** A body field of a task record (base64) as UTF-8 text. */
export function bodyText(base64: string): string {
  return new TextDecoder().decode(base64ToBytes(base64));
}

/** A body field of a task record (base64) parsed as JSON. */
export function bodyJSON<T = unknown>(base64: string): T {
  return JSON.parse(bodyText(base64)) as T;
}

export interface ClientOptions {
  /** The control API, e.g. `https://async.example.com` or `http://localhost:8787`. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /**
   * Suffix of app hosts: a task for `shop` is submitted to `shop<suffix>`.
   * @default "." + the endpoint's host (`.async.example.com`, `.localhost:8787`)
   */
  appHostSuffix?: string;
  /**
   * Send every request to this address (e.g. `http://127.0.0.1:8787`) with the proper Host
   * header: for local `*.localhost` app hosts, which Node does not resolve. Node only.
   * @default undefined
   */
  connectTo?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default globalThis.WebSocket */
  WebSocket?: typeof WebSocket;
  /**
   * Answers 429 and 503 are retried after their `Retry-After` (or a growing backoff) this many
   * times before the error is thrown. @default 3
   */
  retries?: number;
}

export interface SubmitOptions {
  /** @default "POST" */
  method?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** `Asyncgate-Delay`: seconds, or `10s` / `5m` / `2h`. */
  delay?: number | string;
  /** `Asyncgate-Not-Before`: run no earlier than this (a Date, or unix seconds). */
  notBefore?: Date | number;
  /** `Asyncgate-Fail-Fast`: ask the handler to fail fast (App Engine's X-AppEngine-FailFast). */
  failFast?: boolean;
  /** `Asyncgate-Deduplication-Id`. */
  deduplicationId?: string;
  /** `Asyncgate-Retries`. */
  retries?: number;
  /** `Asyncgate-Timeout`: per-attempt timeout. */
  timeout?: number | string;
  /** `Asyncgate-Callback`. */
  callback?: string;
}

export interface WaitOptions {
  /** Give up after this many ms. @default 60000 */
  timeoutMs?: number;
  /** First poll interval; it grows to 2 s. @default 200 */
  intervalMs?: number;
  signal?: AbortSignal;
}

const encoder = new TextEncoder();
const FINISHED = new Set([10, 11]);

/**
 * Signs a request as the gateway verifies it: sets `Content-Type` (JSON when a body has none),
 * a fresh `X-Qiniu-Date` (with REQUIRE_SIGNED_DATE a request without it is refused, and with it
 * a captured request cannot be replayed after 15 minutes) and `Authorization`, in `headers`.
 */
export async function signRequest(
  keys: { accessKey: string; secretKey: string },
  request: { method: string; url: string; headers: Record<string, string>; body?: Uint8Array },
): Promise<Record<string, string>> {
  const { headers } = request;
  let contentType = Object.entries(headers).find(([name]) => name.toLowerCase() === "content-type")?.[1] ?? null;
  if (request.body !== undefined && contentType === null) contentType = headers["Content-Type"] = "application/json";
  headers["X-Qiniu-Date"] = formatQiniuDate(Date.now());
  const parsed = new URL(request.url);
  headers["Authorization"] = await qiniuAuthorization(keys.accessKey, keys.secretKey, {
    method: request.method,
    pathAndQuery: parsed.pathname + parsed.search,
    host: parsed.host,
    contentType,
    headers: Object.entries(headers),
    body: request.body ?? new Uint8Array(0),
  });
  return headers;
}

export class AsyncgateClient {
  readonly #options: ClientOptions;
  readonly #endpoint: URL;
  readonly #appHostSuffix: string;
  readonly #send: Transport;

  constructor(options: ClientOptions) {
    if (!options.accessKey || !options.secretKey) throw new TypeError("accessKey and secretKey are required");
    this.#options = options;
    this.#endpoint = new URL(options.connectTo ?? options.endpoint);
    this.#appHostSuffix = options.appHostSuffix ?? `.${new URL(options.endpoint).host}`;
    this.#send = options.connectTo ? connectToTransport(options.connectTo) : fetchTransport(options.fetch);
  }

  /** Submits a request for `app`; the gateway answers with the task id at once. */
  async submit(app: string, path: string, options: SubmitOptions = {}): Promise<{ id: string; deduplicated: boolean }> {
    const headers: Record<string, string> = { ...options.headers };
    // As X-Qiniu-Asyncgate-*: the Qiniu token signs them, so a captured request cannot be replayed
    // with other control headers (REQUIRE_SIGNED_CONTROL_HEADERS refuses unsigned ones).
    if (options.delay !== undefined) headers["X-Qiniu-Asyncgate-Delay"] = String(options.delay);
    if (options.notBefore !== undefined)
      headers["X-Qiniu-Asyncgate-Not-Before"] = String(unixSeconds(options.notBefore));
    if (options.failFast) headers["X-Qiniu-Asyncgate-Fail-Fast"] = "true";
    if (options.deduplicationId !== undefined) headers["X-Qiniu-Asyncgate-Deduplication-Id"] = options.deduplicationId;
    if (options.retries !== undefined) headers["X-Qiniu-Asyncgate-Retries"] = String(options.retries);
    if (options.timeout !== undefined) headers["X-Qiniu-Asyncgate-Timeout"] = String(options.timeout);
    if (options.callback !== undefined) headers["X-Qiniu-Asyncgate-Callback"] = options.callback;
    const host = `${app}${this.#appHostSuffix.startsWith(".") ? this.#appHostSuffix : `.${this.#appHostSuffix}`}`;
    const url = `${this.#endpoint.protocol}//${host}${path.startsWith("/") ? path : `/${path}`}`;
    const response = await this.#call(options.method ?? "POST", url, options.body, headers);
    const { id } = JSON.parse(response.text) as { id: string };
    return { id, deduplicated: response.headers.get("asyncgate-deduplicated") === "true" };
  }

  /** Submits `value` as a JSON body (`Content-Type: application/json`). */
  async submitJSON(
    app: string,
    path: string,
    value: unknown,
    options: Omit<SubmitOptions, "body"> = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    return this.submit(app, path, {
      ...options,
      body: JSON.stringify(value),
      headers: { "Content-Type": "application/json", ...options.headers },
    });
  }

  async getTask(id: string): Promise<TaskRecord> {
    return JSON.parse(
      (await this.#call("GET", this.#controlUrl(`/v1/task/${encodeURIComponent(id)}`))).text,
    ) as TaskRecord;
  }

  /** Polls until the task reaches 10 or 11, backing off from `intervalMs` to 2 s. */
  async waitForTask(id: string, options: WaitOptions = {}): Promise<TaskRecord> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    let interval = options.intervalMs ?? 200;
    for (;;) {
      options.signal?.throwIfAborted();
      const task = await this.getTask(id);
      if (FINISHED.has(task.state)) return task;
      if (Date.now() + interval > deadline)
        throw new AsyncgateError(408, "wait_timeout", `task ${id} still in state ${task.state}`, null);
      await new Promise((resolve) => setTimeout(resolve, interval));
      interval = Math.min(2_000, interval * 1.5);
    }
  }

  /** Cancels a waiting task. */
  async cancel(id: string): Promise<TaskRecord> {
    return JSON.parse(
      (await this.#call("DELETE", this.#controlUrl(`/v1/task/${encodeURIComponent(id)}`))).text,
    ) as TaskRecord;
  }

  /** Runs a failed task again, with a fresh attempt budget. */
  async retry(id: string): Promise<TaskRecord> {
    return JSON.parse(
      (await this.#call("POST", this.#controlUrl(`/v1/task/${encodeURIComponent(id)}/retry`))).text,
    ) as TaskRecord;
  }

  /** `app`'s tasks, newest first, without bodies: an async iterator that follows the cursors. */
  async *listTasks(app: string, options: ListTasksOptions = {}): AsyncIterableIterator<TaskRecord> {
    let cursor: string | null = null;
    do {
      options.signal?.throwIfAborted();
      const query = new URLSearchParams({ app, limit: String(options.pageSize ?? 100) });
      if (options.state !== undefined) query.set("state", String(options.state));
      if (options.createdAfter !== undefined) query.set("created_after", String(unixSeconds(options.createdAfter)));
      if (options.createdBefore !== undefined) query.set("created_before", String(unixSeconds(options.createdBefore)));
      if (cursor) query.set("cursor", cursor);
      const page = JSON.parse((await this.#call("GET", this.#controlUrl(`/v1/tasks?${query}`))).text) as {
        tasks: TaskRecord[];
        cursor: string | null;
      };
      yield* page.tasks;
      cursor = page.cursor;
    } while (cursor);
  }

  /** App entries: create, list, read, update, pause, resume, delete, rotate the signing secret. */
  readonly apps = {
    create: async (
      config: AppConfigPatch & { name: string; origin: string },
    ): Promise<App & { signing_secret: string }> =>
      (await this.request("POST", "/v1/apps", config)) as App & { signing_secret: string },
    list: async (
      filter: AppListFilter = {},
    ): Promise<{ total: number; page: number; page_size: number; apps: App[] }> => {
      const query = new URLSearchParams();
      if (filter.ids) query.set("ids", filter.ids.join(","));
      if (filter.state) query.set("state", filter.state);
      if (filter.page) query.set("page", String(filter.page));
      if (filter.pageSize) query.set("page_size", String(filter.pageSize));
      const search = query.size > 0 ? `?${query}` : "";
      return (await this.request("GET", `/v1/apps${search}`)) as {
        total: number;
        page: number;
        page_size: number;
        apps: App[];
      };
    },
    get: async (name: string): Promise<AppDetails> =>
      (await this.request("GET", `/v1/apps/${encodeURIComponent(name)}`)) as AppDetails,
    update: async (name: string, patch: AppConfigPatch): Promise<App> =>
      (await this.request("PATCH", `/v1/apps/${encodeURIComponent(name)}`, patch)) as App,
    pause: (name: string): Promise<App> => this.apps.update(name, { state: "Paused" }),
    resume: (name: string): Promise<App> => this.apps.update(name, { state: "Active" }),
    delete: async (name: string): Promise<{ deleted: string }> =>
      (await this.request("DELETE", `/v1/apps/${encodeURIComponent(name)}`)) as { deleted: string },
    stats: async (name: string): Promise<Record<string, unknown>> =>
      (await this.request("GET", `/v1/apps/${encodeURIComponent(name)}/stats`)) as Record<string, unknown>,
    /**
     * Re-runs failed tasks (each once, with a fresh attempt budget), optionally only those
     * created since/until (unix seconds) or whose last response had `statusCode`; `dryRun`
     * only counts them. The first 500 run now, the rest 500 per alarm.
     */
    redrive: async (
      name: string,
      filter: { since?: number; until?: number; statusCode?: number; dryRun?: boolean } = {},
    ): Promise<{ matched: number; retried: number; remaining: number }> =>
      (await this.request("POST", `/v1/apps/${encodeURIComponent(name)}/redrive`, {
        state: 11,
        ...(filter.since === undefined ? {} : { since: filter.since }),
        ...(filter.until === undefined ? {} : { until: filter.until }),
        ...(filter.statusCode === undefined ? {} : { status_code: filter.statusCode }),
        ...(filter.dryRun ? { dry_run: true } : {}),
      })) as { matched: number; retried: number; remaining: number },
    /** Drops every waiting task (Cloud Tasks' purge): the first 500 now, the rest 500 per alarm. */
    purge: async (name: string): Promise<{ deleted: number; remaining: number }> =>
      (await this.request("POST", `/v1/apps/${encodeURIComponent(name)}/purge`, { state: 0 })) as {
        deleted: number;
        remaining: number;
      },
    rotateSigningSecret: async (name: string): Promise<{ signing_secret: string; previous_valid_until: number }> =>
      (await this.request("POST", `/v1/apps/${encodeURIComponent(name)}/signing-secret/rotate`)) as {
        signing_secret: string;
        previous_valid_until: number;
      },
  };

  /** An app's access keys: create (the secret is answered once), list, revoke. */
  readonly keys = {
    create: async (app: string, permissions: Permission[]): Promise<AccessKey & { secret_key: string }> =>
      (await this.request("POST", `/v1/apps/${encodeURIComponent(app)}/keys`, { permissions })) as AccessKey & {
        secret_key: string;
      },
    list: async (app: string): Promise<AccessKey[]> =>
      ((await this.request("GET", `/v1/apps/${encodeURIComponent(app)}/keys`)) as { keys: AccessKey[] }).keys,
    revoke: async (app: string, accessKey: string): Promise<{ revoked: string }> =>
      (await this.request("DELETE", `/v1/apps/${encodeURIComponent(app)}/keys/${encodeURIComponent(accessKey)}`)) as {
        revoked: string;
      },
  };

  /**
   * Live results of `app` as an async iterator: heartbeats, reconnects and resumes by itself,
   * yielding every result exactly once in seq order. Break out of the loop (or abort the
   * signal) to stop. Fails at once for bad keys or an unknown app.
   */
  subscribe(app: string, options: SubscribeOptions = {}): AsyncIterableIterator<TaskResult> {
    const WebSocketImpl = this.#options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== "function") {
      throw new TypeError(
        "no WebSocket here: Node ≥ 22 has one built in; on older Node pass one (e.g. from the ws package) as the WebSocket option",
      );
    }
    let checked = false;
    return subscription(async (since) => {
      if (!checked) {
        // A WebSocket cannot report why an upgrade failed: ask once over HTTP first.
        await this.#call("GET", this.#controlUrl(`/v1/tasks?app=${encodeURIComponent(app)}&limit=1`));
        checked = true;
      }
      // hello=1: the first frame names the latest seq, where a resume starts when no result came yet.
      const query = `/v1/tasks?app=${encodeURIComponent(app)}&hello=1${since === null ? "" : `&since=${since}`}`;
      const base = this.#controlUrl(query).replace(/^http/, "ws");
      const deadline = Math.floor(Date.now() / 1000) + 300;
      return new WebSocketImpl(await signUrl(base, deadline, this.#options.accessKey, this.#options.secretKey));
    }, options);
  }

  /**
   * What the gateway has spent since its isolates started (admin only): the Worker's isolate
   * plus the objects of `apps`. Exact locally; partial when deployed (per isolate).
   */
  async meters(apps: string[] = []): Promise<{ meters: Record<string, number>; isolates: number; apps: string[] }> {
    const query = apps.length > 0 ? `?apps=${apps.map(encodeURIComponent).join(",")}` : "";
    return (await this.request("GET", `/v1/meters${query}`)) as {
      meters: Record<string, number>;
      isolates: number;
      apps: string[];
    };
  }

  /** A signed request to the control API; throws {@link AsyncgateError} for any error answer. */
  async request(method: string, pathAndQuery: string, body?: unknown): Promise<unknown> {
    const response = await this.#call(
      method,
      this.#controlUrl(pathAndQuery),
      body === undefined ? undefined : JSON.stringify(body),
    );
    return response.text ? (JSON.parse(response.text) as unknown) : null;
  }

  #controlUrl(pathAndQuery: string): string {
    return new URL(pathAndQuery, this.#endpoint).toString();
  }

  async #call(method: string, url: string, body?: string | Uint8Array, extraHeaders: Record<string, string> = {}) {
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    const headers: Record<string, string> = { ...extraHeaders };
    // Signed afresh for each try: its date is part of the signature.
    const signedSend = async () => {
      await signRequest(this.#options, { method, url, headers, body: bytes });
      return this.#send({ url, method, headers, body: bytes ?? new Uint8Array(0) });
    };
    let response = await signedSend();
    // Busy (429) or unavailable (503): wait as Retry-After says, or back off, a few times.
    for (
      let retry = 0;
      (response.status === 429 || response.status === 503) && retry < (this.#options.retries ?? 3);
      retry++
    ) {
      const retryAfter = Number(response.headers.get("retry-after"));
      const waitMs =
        Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 60_000) : 250 * 2 ** retry;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      response = await signedSend();
    }
    if (response.status >= 400) {
      let error = { code: "http_error", error: response.text };
      try {
        error = JSON.parse(response.text) as typeof error;
      } catch {
        // not a gateway error body
      }
      throw new AsyncgateError(response.status, error.code, error.error, response.headers.get("x-reqid"));
    }
    return response;
  }
}
