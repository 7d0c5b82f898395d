/**
 * asyncgate's TypeScript client, for Node ≥ 22 and browsers (Web Crypto, fetch, WebSocket).
 *
 *   const gateway = new AsyncgateClient({ endpoint: "https://async.example.com", accessKey, secretKey });
 *   const { id } = await gateway.submit("shop", "/orders", { body: JSON.stringify(order) });
 *   const task = await gateway.waitForTask(id);
 *   for await (const result of gateway.subscribe("shop")) console.log(result.seq, result.state);
 */
import { AsyncgateError } from "./errors";
import { subscription, type SubscribeOptions, type TaskResult } from "./subscription";
import { connectToTransport, fetchTransport, type Transport } from "./transport";
import { formatQiniuDate, qiniuAuthorization } from "../auth/qiniu";
import { signUrl } from "../auth/url-token";
import type { TaskRecord } from "../shared/types";

export { AsyncgateError } from "./errors";
export type { SubscribeOptions, TaskResult } from "./subscription";
export type { TaskRecord } from "../shared/types";

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
}

export interface SubmitOptions {
  /** @default "POST" */
  method?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** `Asyncgate-Delay`: seconds, or `10s` / `5m` / `2h`. */
  delay?: number | string;
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
    if (options.delay !== undefined) headers["Asyncgate-Delay"] = String(options.delay);
    if (options.deduplicationId !== undefined) headers["Asyncgate-Deduplication-Id"] = options.deduplicationId;
    if (options.retries !== undefined) headers["Asyncgate-Retries"] = String(options.retries);
    if (options.timeout !== undefined) headers["Asyncgate-Timeout"] = String(options.timeout);
    if (options.callback !== undefined) headers["Asyncgate-Callback"] = options.callback;
    const host = `${app}${this.#appHostSuffix.startsWith(".") ? this.#appHostSuffix : `.${this.#appHostSuffix}`}`;
    const url = `${this.#endpoint.protocol}//${host}${path.startsWith("/") ? path : `/${path}`}`;
    const response = await this.#call(options.method ?? "POST", url, options.body, headers);
    const { id } = JSON.parse(response.text) as { id: string };
    return { id, deduplicated: response.headers.get("asyncgate-deduplicated") === "true" };
  }

  async getTask(id: string): Promise<TaskRecord> {
    return JSON.parse((await this.#call("GET", this.#controlUrl(`/v1/task/${encodeURIComponent(id)}`))).text) as TaskRecord;
  }

  /** Polls until the task reaches 10 or 11, backing off from `intervalMs` to 2 s. */
  async waitForTask(id: string, options: WaitOptions = {}): Promise<TaskRecord> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    let interval = options.intervalMs ?? 200;
    for (;;) {
      options.signal?.throwIfAborted();
      const task = await this.getTask(id);
      if (FINISHED.has(task.state)) return task;
      if (Date.now() + interval > deadline) throw new AsyncgateError(408, "wait_timeout", `task ${id} still in state ${task.state}`, null);
      await new Promise((resolve) => setTimeout(resolve, interval));
      interval = Math.min(2_000, interval * 1.5);
    }
  }

  /** Cancels a waiting task. */
  async cancel(id: string): Promise<TaskRecord> {
    return JSON.parse((await this.#call("DELETE", this.#controlUrl(`/v1/task/${encodeURIComponent(id)}`))).text) as TaskRecord;
  }

  /**
   * Live results of `app` as an async iterator: heartbeats, reconnects and resumes by itself,
   * yielding every result exactly once in seq order. Break out of the loop (or abort the
   * signal) to stop. Fails at once for bad keys or an unknown app.
   */
  subscribe(app: string, options: SubscribeOptions = {}): AsyncIterableIterator<TaskResult> {
    const WebSocketImpl = this.#options.WebSocket ?? globalThis.WebSocket;
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

  /** A signed request to the control API; throws {@link AsyncgateError} for any error answer. */
  async request(method: string, pathAndQuery: string, body?: unknown): Promise<unknown> {
    const response = await this.#call(method, this.#controlUrl(pathAndQuery), body === undefined ? undefined : JSON.stringify(body));
    return response.text ? (JSON.parse(response.text) as unknown) : null;
  }

  #controlUrl(pathAndQuery: string): string {
    return new URL(pathAndQuery, this.#endpoint).toString();
  }

  async #call(method: string, url: string, body?: string | Uint8Array, extraHeaders: Record<string, string> = {}) {
    const bytes = typeof body === "string" ? encoder.encode(body) : (body ?? new Uint8Array(0));
    // Always signed: with REQUIRE_SIGNED_DATE a request without it is refused, and with it a
    // captured request cannot be replayed after 15 minutes.
    const headers: Record<string, string> = { ...extraHeaders, "X-Qiniu-Date": formatQiniuDate(Date.now()) };
    let contentType = Object.entries(headers).find(([name]) => name.toLowerCase() === "content-type")?.[1] ?? null;
    if (body !== undefined && contentType === null) contentType = headers["Content-Type"] = "application/json";
    const parsed = new URL(url);
    headers["Authorization"] = await qiniuAuthorization(this.#options.accessKey, this.#options.secretKey, {
      method,
      pathAndQuery: parsed.pathname + parsed.search,
      host: parsed.host,
      contentType,
      headers: Object.entries(headers),
      body: bytes,
    });
    const response = await this.#send({ url, method, headers, body: bytes });
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
