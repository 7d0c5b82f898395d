// Helpers for tests that run inside workerd: signed requests through the Worker's own fetch.
import { env, exports } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { vi } from "vitest";
import type { SubmitInput } from "../../src/app/contract";
import { DISPATCH_LINGER_MS } from "../../src/app/outbox";
import { openStore, type NewTask, type TaskStore } from "../../src/app/store";
import type { TestAppQueue } from "./test-app-queue";
import { qiniuAuthorization } from "../../src/auth/qiniu";
import { appQueue } from "../../src/app/stubs";
import { newTaskId } from "../../src/shared/task-id";
import type { TaskRecord } from "../../src/shared/types";

export const CONTROL = "http://async.localhost";
export const appUrl = (app: string, pathAndQuery: string) => `http://${app}.async.localhost${pathAndQuery}`;

let counter = 0;
/** A fresh app name: storage is shared by the tests of one file. */
export const uniqueApp = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;

export interface SignedInit {
  method?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Sign with these keys instead of the admin pair. */
  keys?: { accessKey: string; secretKey: string };
  /** Leave the request unsigned. */
  unsigned?: boolean;
}

export async function signedRequest(url: string, init: SignedInit = {}): Promise<Request> {
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  const body = typeof init.body === "string" ? new TextEncoder().encode(init.body) : (init.body ?? new Uint8Array(0));
  const headers = new Headers(init.headers);
  if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  const parsed = new URL(url);
  headers.set("host", parsed.host);
  if (!init.unsigned) {
    const keys = init.keys ?? { accessKey: env.ADMIN_ACCESS_KEY, secretKey: env.ADMIN_SECRET_KEY };
    headers.set(
      "authorization",
      await qiniuAuthorization(keys.accessKey, keys.secretKey, {
        method,
        pathAndQuery: parsed.pathname + parsed.search,
        host: parsed.host,
        contentType: headers.get("content-type"),
        headers,
        body,
      }),
    );
  }
  return new Request(url, { method, headers, body: method === "GET" || method === "HEAD" ? undefined : body });
}

export async function call(url: string, init: SignedInit = {}): Promise<Response> {
  return exports.default.fetch(await signedRequest(url, init));
}

export async function createApp(name: string, config: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const response = await call(`${CONTROL}/v1/apps`, {
    body: JSON.stringify({ name, origin: env.TEST_ORIGIN, ...config }),
  });
  if (response.status !== 201) throw new Error(`createApp ${name}: ${response.status} ${await response.text()}`);
  return response.json();
}

export async function submit(app: string, pathAndQuery: string, init: SignedInit = {}): Promise<string> {
  const response = await call(appUrl(app, pathAndQuery), { method: "POST", ...init });
  if (response.status !== 202) throw new Error(`submit: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { id: string }).id;
}

export async function getTask(id: string): Promise<TaskRecord> {
  const response = await call(`${CONTROL}/v1/task/${id}`);
  if (response.status !== 200) throw new Error(`getTask: ${response.status} ${await response.text()}`);
  return response.json();
}

export async function waitForState(id: string, states: number[], timeout = 10_000): Promise<TaskRecord> {
  return vi.waitUntil(
    async () => {
      const task = await getTask(id);
      return states.includes(task.state) ? task : undefined;
    },
    { timeout, interval: 50 },
  ) as Promise<TaskRecord>;
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
  /** When the origin received it, unix ms. */
  at: number;
}

/** What the real origin received for a task. */
export async function received(taskId: string): Promise<ReceivedRequest[]> {
  return (await fetch(`${env.TEST_ORIGIN}/__received?task=${taskId}`)).json();
}

/** What `AppQueue.submit` receives for an admin's empty POST to `path`, due now unless `notBeforeMs` says. */
export function submitInput(path: string, notBeforeMs = Date.now()): SubmitInput {
  return {
    caller: { kind: "admin" },
    reqId: "test",
    request: { method: "POST", path, raw_query: "", header: {}, body: new Uint8Array() },
    options: { notBeforeMs, deduplicationId: null, maxAttempts: null, timeout: null, callback: null, failFast: false },
  };
}

/** A waiting task that no queue message points at yet: the test drives begin/finish itself. */
export async function parkedTask(app: string, path = "/parked"): Promise<string> {
  const stub = appQueue(env, app);
  const submitted = await stub.submit(submitInput(path, Date.now() + 30_000));
  if (!submitted.ok) throw new Error(submitted.error.message);
  await makeDue(app, submitted.value.id);
  return submitted.value.id;
}

/** Makes a waiting task due now, marked as already dispatched so the outbox leaves it alone. */
export async function makeDue(app: string, id: string): Promise<void> {
  await runInDurableObject(appQueue(env, app), async (instance: TestAppQueue, state) => {
    state.storage.sql.exec("UPDATE tasks SET eta_ms = ? WHERE id = ?", Date.now() - 1, id);
    instance.resetCaches(); // the write bypassed the store
    await instance.markSent(id, Date.now());
  });
}

/** A task row as `AppQueue.submit` would insert it, for tests that fill a store directly. */
export function newTask(id: string, createdMs: number, fields: Partial<NewTask> = {}): NewTask {
  return {
    id,
    reqId: "test",
    request: { method: "POST", path: "/t", raw_query: "", header: {}, body: new Uint8Array() },
    createdMs,
    etaMs: createdMs,
    dispatchedMs: null,
    deduplicationId: null,
    maxAttempts: null,
    timeout: null,
    callback: null,
    ...fields,
  };
}

/** A task finished (10) through the state machine, without the queue: a new result. */
export async function finishParked(app: string, path = "/r"): Promise<string> {
  const stub = appQueue(env, app);
  const id = await parkedTask(app, path);
  const begun = await stub.begin(id);
  if (!begun.run) throw new Error(`begin: ${begun.reason}`);
  await stub.finish(id, begun.delivery.attempt, { kind: "response", status: 200, header: {}, body: new Uint8Array() });
  return id;
}

/** Runs `run` inside the app's object, on its SQLite storage, in one turn. */
export const sql =
  (app: string) =>
  <T>(run: (sql: SqlStorage, instance: TestAppQueue) => T) =>
    runInDurableObject(appQueue(env, app), async (instance: TestAppQueue, state) => {
      const result = await run(state.storage.sql, instance);
      // What the test wrote through a store of its own: the object reads its counts again.
      instance.resetCaches();
      return result;
    });

/** The app's object as the tests run it (test/worker/entry.ts): with TestAppQueue's hooks. */
export const testAppQueue = (app: string) => appQueue(env, app) as unknown as DurableObjectStub<TestAppQueue>;

/** A SqlStorage that counts the rows its cursors read. */
export function metered(inner: SqlStorage): {
  sql: SqlStorage;
  rowsRead: () => number;
  rowsWritten: () => number;
  reset: () => void;
} {
  let cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  const sql = new Proxy(inner, {
    get(target, property) {
      if (property !== "exec") return Reflect.get(target, property) as unknown;
      return (query: string, ...bindings: SqlStorageValue[]) => {
        const cursor = target.exec(query, ...bindings);
        cursors.push(cursor);
        return cursor;
      };
    },
  });
  return {
    sql,
    rowsRead: () => cursors.reduce((sum, cursor) => sum + cursor.rowsRead, 0),
    rowsWritten: () => cursors.reduce((sum, cursor) => sum + cursor.rowsWritten, 0),
    reset: () => (cursors = []),
  };
}

/** Inserts `count` finished tasks with `bodyBytes` response bodies and consecutive seqs, the way finish would. */
export function insertResults(store: TaskStore, sql: SqlStorage, count: number, bodyBytes: number): void {
  const body = new Uint8Array(bodyBytes).fill(7);
  for (let i = 0; i < count; i++) {
    const id = newTaskId(1, Date.now() - 1000 + i);
    store.insert(
      newTask(id, Date.now(), {
        request: { method: "POST", path: `/r/${i}`, raw_query: "", header: {}, body: new Uint8Array() },
      }),
    );
    sql.exec(
      "UPDATE tasks SET response_status = 200, response_header = '{}', response_body = ? WHERE id = ?",
      body.slice().buffer,
      id,
    );
    store.markFinished(id, 0, 10, Date.now());
  }
}

/** Waits out the outbox's linger (a lone new task's message waits that long for company before it is sent). */
export const lingered = () => new Promise((resolve) => setTimeout(resolve, DISPATCH_LINGER_MS * 4));
