// Proves every error path of SPEC §8: JSON {error, code, req_id}, the right status, never a 500 for bad input; and the control host's root, the one unauthenticated pointer to the console and the API description.
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { CONTROL, appUrl, call, createApp, getTask, signedRequest, submit, uniqueApp } from "./helpers";

async function expectError(response: Response, status: number, code: string): Promise<void> {
  const body = (await response.json()) as { error: string; code: string; req_id: string };
  expect({ status: response.status, code: body.code }).toEqual({ status, code });
  expect(body.error.length).toBeGreaterThan(0);
  expect(body.req_id).toBe(response.headers.get("x-reqid"));
  expect(response.headers.get("content-type")).toBe("application/json");
}

describe("the control host's root", () => {
  it("sends a browser to the console and tells anything else where the console and the API description are, unauthenticated", async () => {
    const browser = await exports.default.fetch(
      new Request(`${CONTROL}/`, { headers: { Accept: "text/html,*/*" }, redirect: "manual" }),
    );
    expect({ status: browser.status, location: browser.headers.get("location") }).toEqual({
      status: 302,
      location: "/console",
    });
    const client = await call(`${CONTROL}/`, { unsigned: true });
    expect(client.status).toBe(200);
    expect(await client.json()).toEqual({ name: "asyncgate", console: "/console", openapi: "/openapi.json" });
    // Only the root: any other unauthenticated path is still refused.
    await expectError(await call(`${CONTROL}/v1`, { unsigned: true }), 401, "unauthorized");
  });
});

describe("authentication", () => {
  const app = uniqueApp("auth");
  beforeAll(async () => {
    await createApp(app);
  });

  it("401 without a token, on both hosts", async () => {
    await expectError(await call(`${CONTROL}/v1/apps`, { unsigned: true }), 401, "unauthorized");
    await expectError(await call(appUrl(app, "/x"), { body: "{}", unsigned: true }), 401, "unauthorized");
  });

  it("401 for an unknown key or a wrong signature", async () => {
    await expectError(
      await call(`${CONTROL}/v1/apps`, { keys: { accessKey: "nobody", secretKey: "x" } }),
      401,
      "bad_token",
    );
    await expectError(
      await call(`${CONTROL}/v1/apps`, { keys: { accessKey: env.ADMIN_ACCESS_KEY, secretKey: "wrong" } }),
      401,
      "bad_token",
    );
  });

  it("401 when the signed body was changed in transit", async () => {
    const signed = await signedRequest(appUrl(app, "/x"), { body: '{"amount":1}' });
    const tampered = new Request(signed, { body: '{"amount":9}' });
    await expectError(await exports.default.fetch(tampered), 401, "bad_token");
  });

  it("401 for an X-Qiniu-Date outside the 15-minute window; accepted inside it", async () => {
    const format = (ms: number) =>
      new Date(ms)
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, "");
    const stale = format(Date.now() - 16 * 60_000);
    await expectError(await call(`${CONTROL}/v1/apps`, { headers: { "x-qiniu-date": stale } }), 401, "request_expired");
    expect((await call(`${CONTROL}/v1/apps`, { headers: { "x-qiniu-date": format(Date.now()) } })).status).toBe(200);
  });
});

describe("submission errors", () => {
  const app = uniqueApp("subm");
  beforeAll(async () => {
    await createApp(app, { max_body_bytes: 1024 });
  });

  it("404 for an unknown app and for an invalid app label", async () => {
    await expectError(await call(appUrl(uniqueApp("none"), "/x"), { body: "{}" }), 404, "app_not_found");
    await expectError(await call(appUrl("Bad_App", "/x"), { body: "{}" }), 404, "app_not_found");
  });

  it("413 over the app's body limit, and over the gateway's hard limit", async () => {
    await expectError(await call(appUrl(app, "/x"), { body: "x".repeat(1025) }), 413, "body_too_large");
    await expectError(await call(appUrl(app, "/x"), { body: new Uint8Array(1_800_001) }), 413, "body_too_large");
    expect((await call(appUrl(app, "/x"), { body: "x".repeat(1024) })).status).toBe(202);
  });

  it("400 for a bad control header, and no task is created", async () => {
    await expectError(
      await call(appUrl(app, "/x"), { body: "{}", headers: { "asyncgate-delay": "tomorrow" } }),
      400,
      "invalid_header",
    );
    await expectError(
      await call(appUrl(app, "/x"), { body: "{}", headers: { "asyncgate-callback": "ftp://x" } }),
      400,
      "invalid_callback",
    );
    const list = (await (await call(`${CONTROL}/v1/tasks?app=${app}`)).json()) as { tasks: unknown[] };
    expect(list.tasks.length).toBe(1);
  });

  it("404 at once after the app is deleted; its tasks go too", async () => {
    const doomed = uniqueApp("doomed");
    await createApp(doomed);
    const id = await submit(doomed, "/x", { body: "{}", headers: { "asyncgate-delay": "1h" } });
    expect((await call(`${CONTROL}/v1/apps/${doomed}`, { method: "DELETE" })).status).toBe(200);
    await expectError(await call(appUrl(doomed, "/x"), { body: "{}" }), 404, "app_not_found");
    await expectError(await call(`${CONTROL}/v1/task/${id}`), 404, "task_not_found");
    await expectError(await call(`${CONTROL}/v1/apps/${doomed}`), 404, "app_not_found");
    // The name can be used again; old task ids never reach the new app.
    await createApp(doomed);
    await expectError(await call(`${CONTROL}/v1/task/${id}`), 404, "task_not_found");
  });
});

describe("control API errors", () => {
  it("404 for unknown and malformed task ids", async () => {
    await expectError(await call(`${CONTROL}/v1/task/${"f".repeat(32)}`), 404, "task_not_found");
    await expectError(await call(`${CONTROL}/v1/task/not-an-id`), 404, "task_not_found");
  });

  it("404 for unknown routes, 405 for wrong methods", async () => {
    await expectError(await call(`${CONTROL}/v2/nothing`), 404, "not_found");
    await expectError(await call(`${CONTROL}/v1/apps`, { method: "PUT", body: "{}" }), 405, "method_not_allowed");
    await expectError(await call(`${CONTROL}/v1/task/${"0".repeat(32)}/retry`), 405, "method_not_allowed");
  });

  it("409 for an existing app name", async () => {
    const name = uniqueApp("dup");
    await createApp(name);
    await expectError(
      await call(`${CONTROL}/v1/apps`, { body: JSON.stringify({ name, origin: env.TEST_ORIGIN }) }),
      409,
      "app_exists",
    );
  });

  it("400 for bad JSON, bad config and bad query parameters", async () => {
    await expectError(await call(`${CONTROL}/v1/apps`, { body: "{not json" }), 400, "invalid_json");
    await expectError(
      await call(`${CONTROL}/v1/apps`, { body: '{"name":"x","origin":"gopher://x"}' }),
      400,
      "invalid_origin",
    );
    await expectError(await call(`${CONTROL}/v1/apps?page_size=101`), 400, "invalid_page_size");
    await expectError(await call(`${CONTROL}/v1/apps?state=Sleeping`), 400, "invalid_state");
    await expectError(await call(`${CONTROL}/v1/tasks`), 400, "invalid_app");
    await expectError(await call(`${CONTROL}/v1/tasks?app=x&state=5`), 400, "invalid_state");
    await expectError(await call(`${CONTROL}/v1/tasks?app=x&cursor=zz`), 400, "invalid_cursor");
    const name = uniqueApp("patch");
    await createApp(name);
    await expectError(
      await call(`${CONTROL}/v1/apps/${name}`, { method: "PATCH", body: '{"retry":{"max_attempts":"many"}}' }),
      400,
      "invalid_max_attempts",
    );
    await expectError(await call(`${CONTROL}/v1/tasks?app=${uniqueApp("nope")}`), 404, "app_not_found");
  });

  it("409 when canceling a finished task", async () => {
    const app = uniqueApp("fin");
    await createApp(app);
    const id = await submit(app, "/x", { body: "{}" });
    const { vi } = await import("vitest");
    await vi.waitUntil(async () => (await getTask(id)).state === 10, { timeout: 5000 });
    await expectError(await call(`${CONTROL}/v1/task/${id}`, { method: "DELETE" }), 409, "task_not_waiting");
  });
});

describe("apps", () => {
  it("create → get → patch → list with filters and total", async () => {
    const a = uniqueApp("la");
    const b = uniqueApp("lb");
    const created = await createApp(a);
    expect(created).toMatchObject({
      name: a,
      state: "Active",
      timeout: 60,
      host: `${a}.async.localhost`,
      retry: { max_attempts: 5 },
    });
    expect(created["signing_secret"]).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    await createApp(b);
    const got = (await (await call(`${CONTROL}/v1/apps/${a}`)).json()) as Record<string, unknown>;
    expect(got["signing_secret"]).toBeUndefined();
    const patched = await call(`${CONTROL}/v1/apps/${b}`, { method: "PATCH", body: '{"state":"Paused","timeout":5}' });
    expect(await patched.json()).toMatchObject({ name: b, state: "Paused", timeout: 5 });
    const list = (await (await call(`${CONTROL}/v1/apps?ids=${a},${b}&state=Paused`)).json()) as {
      total: number;
      apps: { name: string }[];
    };
    expect(list.total).toBe(1);
    expect(list.apps.map((app) => app.name)).toEqual([b]);
    const paged = (await (await call(`${CONTROL}/v1/apps?ids=${a},${b}&page=2&page_size=1`)).json()) as {
      total: number;
      apps: { name: string }[];
    };
    expect(paged.total).toBe(2);
    expect(paged.apps.length).toBe(1);
  });
});
