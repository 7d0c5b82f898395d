// Proves the whole pipeline inside workerd: submit → AppQueue commit → real Queue → consumer → real origin → record.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { base64ToBytes } from "../../src/shared/encoding";
import { CONTROL, appUrl, call, createApp, getTask, received, submit, uniqueApp, waitForState } from "./helpers";

const decode = base64ToBytes;

describe("submit → deliver → record", () => {
  const app = uniqueApp("pipe");
  beforeAll(async () => {
    await createApp(app, { retry: { min_backoff: 0.05, max_backoff: 0.2, max_attempts: 3 } });
  });

  it("answers 202 {id} with Location and X-Reqid, and the task record has Qiniu's shape", async () => {
    const response = await call(appUrl(app, "/orders?x=1"), { body: '{"n":1}' });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(response.headers.get("location")).toBe(`http://async.localhost/v1/task/${id}`);
    const reqId = response.headers.get("x-reqid");
    expect(reqId).toBeTruthy();

    const task = await waitForState(id, [10]);
    expect(Object.keys(task)).toEqual([
      "id",
      "req_id",
      "app",
      "request",
      "created_at",
      "state",
      "response",
      "exec_at",
      "attempts",
      "error",
    ]);
    expect(task).toMatchObject({ id, req_id: reqId, app, state: 10, attempts: 1, error: null });
    expect(task.request).toMatchObject({ method: "POST", path: "/orders", raw_query: "?x=1" });
    expect(task.response?.status_code).toBe(200);
    expect(Number.isInteger(task.created_at) && task.created_at > 1e18).toBe(true);
    expect(task.exec_at! >= task.created_at).toBe(true);
    const echoed = JSON.parse(new TextDecoder().decode(decode(task.response!.body))) as { body: string };
    expect(echoed.body).toBe('{"n":1}');
  });

  it("records and replays exactly: binary body, repeated headers, empty query, unicode path", async () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const request = new Headers([
      ["content-type", "application/octet-stream"],
      ["x-repeat", "one"],
      ["x-repeat", "two"],
      ["asyncgate-task-id", "spoofed"],
      ["x-cloudtasks-taskname", "spoofed"],
    ]);
    const id = await submit(app, "/%E4%BD%A0%E5%A5%BD/r%C3%A9sum%C3%A9?", {
      method: "PUT",
      body: bytes,
      headers: Object.fromEntries([...request.entries()]),
    });
    const task = await waitForState(id, [10]);
    expect(task.request.path).toBe("/%E4%BD%A0%E5%A5%BD/r%C3%A9sum%C3%A9");
    expect(task.request.raw_query).toBe("?");
    expect(task.request.header["X-Repeat"]).toEqual(["one", "two"]);
    expect(task.request.header["Authorization"]).toBeUndefined();
    expect(task.request.header["Asyncgate-Task-Id"]).toBeUndefined();
    expect(decode(task.request.body)).toEqual(bytes);

    const [delivery] = await received(id);
    expect(delivery).toBeDefined();
    expect(delivery!.method).toBe("PUT");
    expect(delivery!.url).toBe("/%E4%BD%A0%E5%A5%BD/r%C3%A9sum%C3%A9?");
    expect(decode(delivery!.body)).toEqual(bytes);
    expect(delivery!.headers["x-repeat"]).toBe("one, two");
    expect(delivery!.headers["authorization"]).toBeUndefined();
    expect(delivery!.headers["x-cloudtasks-taskname"]).toBeUndefined();
    // Metadata headers: set by the gateway, not the client's spoofed ones.
    expect(delivery!.headers["asyncgate-task-id"]).toBe(id);
    expect(delivery!.headers["asyncgate-app"]).toBe(app);
    expect(delivery!.headers["asyncgate-retry-count"]).toBe("0");
    expect(delivery!.headers["asyncgate-execution-count"]).toBe("0");
    expect(Number(delivery!.headers["asyncgate-eta"])).toBeCloseTo(task.created_at / 1e9, 0);
    expect(delivery!.headers["asyncgate-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  });

  it("retries a failing origin with backoff until it succeeds, with retry metadata", async () => {
    const key = crypto.randomUUID();
    const id = await submit(app, `/flaky/${key}/2`, { body: "{}" });
    const task = await waitForState(id, [10]);
    expect(task.attempts).toBe(3);
    expect(task.response?.status_code).toBe(200);
    const deliveries = await received(id);
    expect(deliveries.map((d) => d.headers["asyncgate-retry-count"])).toEqual(["0", "1", "2"]);
    expect(deliveries.map((d) => d.headers["asyncgate-execution-count"])).toEqual(["0", "1", "2"]);
    expect(deliveries[2]!.headers["asyncgate-previous-response"]).toBe("503");
    expect(deliveries[2]!.headers["asyncgate-retry-reason"]).toBe("HTTP 503");
  });

  it("ends in 11 when retries are spent, keeping the last response", async () => {
    const id = await submit(app, "/status/500", { body: "{}" });
    const task = await waitForState(id, [11]);
    expect(task.attempts).toBe(3);
    expect(task.response?.status_code).toBe(500);
    expect(atob(task.response!.body)).toBe("status 500");
    expect((await received(id)).length).toBe(3);
  });

  it("a per-attempt timeout fails the attempt with error timeout", async () => {
    const id = await submit(app, "/sleep/3000", {
      body: "{}",
      headers: { "asyncgate-timeout": "200ms", "asyncgate-retries": "0" },
    });
    const task = await waitForState(id, [11]);
    expect(task.attempts).toBe(1);
    expect(task.error).toBe("timeout");
    expect(task.response).toBeUndefined();
  });

  it("a network error fails the attempt with error network error", async () => {
    const broken = uniqueApp("down");
    await createApp(broken, { origin: "http://127.0.0.1:1", retry: { max_attempts: 1 } });
    const id = await submit(broken, "/x", { body: "{}" });
    const task = await waitForState(id, [11]);
    expect(task.error).toBe("network error");
  });

  it("delays a task until Asyncgate-Delay has passed", async () => {
    const before = Date.now();
    const id = await submit(app, "/delayed", { body: "{}", headers: { "asyncgate-delay": "1s" } });
    expect((await getTask(id)).state).toBe(0);
    await waitForState(id, [10]);
    const [delivery] = await received(id);
    expect(delivery!.headers["asyncgate-eta"]).toBeDefined();
    expect(Number(delivery!.headers["asyncgate-eta"]) * 1000).toBeGreaterThanOrEqual(before + 1000 - 1);
  });

  it("deduplicates within retention: same id, 200 with Asyncgate-Deduplicated", async () => {
    const headers = { "asyncgate-deduplication-id": `order-${crypto.randomUUID()}` };
    const first = await call(appUrl(app, "/dedup"), { body: "{}", headers });
    const second = await call(appUrl(app, "/dedup"), { body: "{}", headers });
    expect(first.status).toBe(202);
    expect(second.status).toBe(200);
    expect(second.headers.get("asyncgate-deduplicated")).toBe("true");
    expect(((await second.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
  });

  it("lists tasks newest first with a cursor", async () => {
    const ids = [
      await submit(app, "/l1", { body: "{}" }),
      await submit(app, "/l2", { body: "{}" }),
      await submit(app, "/l3", { body: "{}" }),
    ];
    const first = await call(`${CONTROL}/v1/tasks?app=${app}&limit=2`);
    expect(first.status).toBe(200);
    const page1 = (await first.json()) as { tasks: { id: string }[]; cursor: string };
    expect(page1.tasks.map((t) => t.id)).toEqual([ids[2], ids[1]]);
    const page2 = (await (await call(`${CONTROL}/v1/tasks?app=${app}&limit=2&cursor=${page1.cursor}`)).json()) as {
      tasks: { id: string }[];
    };
    expect(page2.tasks[0]!.id).toBe(ids[0]);
  });

  /**
   * A retried task whose first attempt got 503: the second delivery carries every metadata header.
   * `prefix` names them as the app asked; the client's own copies never get through.
   */
  async function secondDelivery(taskHeaders: string, spoofed: Record<string, string>) {
    const app = uniqueApp(taskHeaders.slice(0, 3));
    await createApp(app, { task_headers: taskHeaders, retry: { min_backoff: 0.05, max_backoff: 0.1 } });
    const id = await submit(app, `/flaky/${app}/1`, {
      body: "{}",
      headers: { "asyncgate-delay": "1", "asyncgate-fail-fast": "true", ...spoofed },
    });
    const task = await waitForState(id, [10]);
    const deliveries = await received(id);
    expect(deliveries.length).toBe(2);
    return { app, id, task, first: deliveries[0]!.headers, second: deliveries[1]!.headers };
  }

  it("uses Cloud Tasks' header names when the app asks for them: all seven, no client copies", async () => {
    const { app, id, task, first, second } = await secondDelivery("cloudtasks", {
      "x-cloudtasks-taskname": "spoofed",
      "x-cloudtasks-taskpreviousresponse": "200",
    });
    expect(second).toMatchObject({
      "x-cloudtasks-taskname": id,
      "x-cloudtasks-queuename": app,
      "x-cloudtasks-taskretrycount": "1",
      "x-cloudtasks-taskexecutioncount": "1",
      "x-cloudtasks-taskpreviousresponse": "503",
      "x-cloudtasks-taskretryreason": "HTTP 503",
    });
    expect(Number(second["x-cloudtasks-tasketa"])).toBeGreaterThan(task.created_at / 1e9);
    expect(first["x-cloudtasks-taskretrycount"]).toBe("0");
    expect(first["x-cloudtasks-taskpreviousresponse"]).toBeUndefined();
    expect(second["asyncgate-task-id"]).toBeUndefined();
    expect(second["x-appengine-failfast"]).toBeUndefined();
  });

  it("uses App Engine's header names (seed 003) when the app asks for them: every one it documents, FailFast when asked", async () => {
    const { app, id, task, first, second } = await secondDelivery("appengine", {
      "x-appengine-taskname": "spoofed",
      "x-appengine-taskpreviousresponse": "200",
    });
    // Seed 003's table: always present ...
    expect(second).toMatchObject({
      "x-appengine-queuename": app,
      "x-appengine-taskname": id,
      "x-appengine-taskretrycount": "1",
      "x-appengine-taskexecutioncount": "1",
    });
    const eta = Number(second["x-appengine-tasketa"]);
    expect(eta).toBeGreaterThanOrEqual(Math.floor(task.created_at / 1e9));
    // ... and those that may be: previous response, retry reason, fail fast.
    expect(second).toMatchObject({
      "x-appengine-taskpreviousresponse": "503",
      "x-appengine-taskretryreason": "HTTP 503",
      "x-appengine-failfast": "true",
    });
    expect(first).toMatchObject({
      "x-appengine-taskretrycount": "0",
      "x-appengine-taskexecutioncount": "0",
      "x-appengine-failfast": "true",
    });
    expect(first["x-appengine-taskpreviousresponse"]).toBeUndefined();
    expect(second["asyncgate-task-id"]).toBeUndefined();
  });

  it("the real origin URL is the test origin", () => {
    expect(env.TEST_ORIGIN).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});

describe("large bodies", () => {
  it("keeps a large request whole and cuts the stored response to fit the row budget", async () => {
    const app = uniqueApp("big");
    await createApp(app, { max_body_bytes: 1_800_000 });
    const body = "a".repeat(1_700_000);
    const id = await submit(app, "/echo", { body, headers: { "content-type": "text/plain" } });
    const task = await waitForState(id, [10]);
    expect(decode(task.request.body).byteLength).toBe(1_700_000);
    const stored = decode(task.response!.body).byteLength;
    const headerBytes = JSON.stringify(task.request.header).length + JSON.stringify(task.response!.header).length;
    expect(stored).toBeGreaterThan(0);
    expect(1_700_000 + stored + headerBytes).toBeLessThanOrEqual(1_950_000);
  });
});
