// Proves tenancy under `wrangler dev`: per-app keys created through the API, every request signed
// by the official qiniu SDK, and the authorization matrix — each permission against each operation,
// on the key's own app and on another app — plus revocation taking effect on the next request.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import qiniu from "qiniu";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startOrigin } from "../../scripts/origin.mjs";
import { freePort, signedCall, startGateway, type Gateway, type HttpResult } from "../support/wrangler-dev";

interface Keys {
  accessKey: string;
  secretKey: string;
}

type Permission = "submit" | "query" | "subscribe" | "manage";

describe("tenancy under wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-tenancy-"));
  const control = () => `localhost:${port}`;
  const appHost = (app: string) => `${app}.async.localhost:${port}`;

  /** A control request, as the admin or as `keys`. */
  const admin = (method: string, path: string, body?: unknown) =>
    signedCall(port, control(), method, path, body === undefined ? {} : { body: JSON.stringify(body) });
  const as = (keys: Keys, method: string, path: string, body?: unknown) =>
    signedCall(port, control(), method, path, { keys, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  async function createKey(app: string, permissions: Permission[]): Promise<Keys> {
    const response = await admin("POST", `/v1/apps/${app}/keys`, { permissions });
    expect(response.status).toBe(201);
    const created = response.json<{
      access_key: string;
      secret_key: string;
      permissions: string[];
      created_at: number;
    }>();
    expect(created.permissions).toEqual(permissions);
    expect(created.access_key.startsWith(`${app}.`)).toBe(true);
    return { accessKey: created.access_key, secretKey: created.secret_key };
  }

  /** A waiting task (delayed an hour) of `app`, submitted by the admin. */
  async function waitingTask(app: string): Promise<string> {
    const response = await signedCall(port, appHost(app), "POST", "/job", {
      body: "{}",
      headers: { "asyncgate-delay": "1h" },
    });
    expect(response.status).toBe(202);
    return response.json<{ id: string }>().id;
  }

  /** The status of a WebSocket upgrade of the live feed, signed with `keys` in the Authorization header. */
  function upgradeStatus(keys: Keys, app: string): Promise<number> {
    const url = `http://${control()}/v1/tasks?app=${app}`;
    const mac = new qiniu.auth.digest.Mac(keys.accessKey, keys.secretKey);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/tasks?app=${app}`, {
      headers: { host: control(), authorization: qiniu.util.generateAccessTokenV2(mac, url, "GET", "", undefined, {}) },
    });
    return new Promise((resolve, reject) => {
      ws.once("open", () => {
        ws.terminate();
        resolve(101);
      });
      ws.once("unexpected-response", (_request, response) => {
        resolve(response.statusCode ?? 0);
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }

  beforeAll(async () => {
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
    for (const name of ["alpha", "beta"]) {
      expect((await admin("POST", "/v1/apps", { name, origin: origin.url })).status).toBe(201);
    }
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  /**
   * Each operation: the permission it needs, how to run it against `app` with `keys`, the status
   * when allowed, and the status a key of another app gets (404 for task ids: no existence oracle).
   */
  const operations: {
    name: string;
    needs: Permission;
    allowed: number;
    otherApp: number;
    run: (keys: Keys, app: string) => Promise<number>;
  }[] = [
    {
      name: "submit",
      needs: "submit",
      allowed: 202,
      otherApp: 403,
      run: async (keys, app) =>
        (await signedCall(port, appHost(app), "POST", "/job", { keys, body: '{"n":1}' })).status,
    },
    {
      name: "get task",
      needs: "query",
      allowed: 200,
      otherApp: 404,
      run: async (keys, app) => (await as(keys, "GET", `/v1/task/${await waitingTask(app)}`)).status,
    },
    {
      name: "list tasks",
      needs: "query",
      allowed: 200,
      otherApp: 403,
      run: async (keys, app) => (await as(keys, "GET", `/v1/tasks?app=${app}`)).status,
    },
    {
      name: "cancel task",
      needs: "manage",
      allowed: 200,
      otherApp: 404,
      run: async (keys, app) => (await as(keys, "DELETE", `/v1/task/${await waitingTask(app)}`)).status,
    },
    {
      // A waiting task cannot be retried: 409 proves the request got past authorization.
      name: "retry task",
      needs: "manage",
      allowed: 409,
      otherApp: 404,
      run: async (keys, app) => (await as(keys, "POST", `/v1/task/${await waitingTask(app)}/retry`)).status,
    },
    {
      name: "subscribe",
      needs: "subscribe",
      allowed: 101,
      otherApp: 403,
      run: (keys, app) => upgradeStatus(keys, app),
    },
    {
      name: "get app",
      needs: "manage",
      allowed: 200,
      otherApp: 403,
      run: async (keys, app) => (await as(keys, "GET", `/v1/apps/${app}`)).status,
    },
    {
      name: "patch app",
      needs: "manage",
      allowed: 200,
      otherApp: 403,
      run: async (keys, app) => (await as(keys, "PATCH", `/v1/apps/${app}`, { timeout: 60 })).status,
    },
    {
      name: "list keys",
      needs: "manage",
      allowed: 200,
      otherApp: 403,
      run: async (keys, app) => (await as(keys, "GET", `/v1/apps/${app}/keys`)).status,
    },
    {
      name: "create key",
      needs: "manage",
      allowed: 201,
      otherApp: 403,
      run: async (keys, app) => (await as(keys, "POST", `/v1/apps/${app}/keys`, { permissions: ["query"] })).status,
    },
  ];
  const keySets: Permission[][] = [
    ["submit"],
    ["query"],
    ["subscribe"],
    ["manage"],
    ["submit", "query", "subscribe", "manage"],
  ];

  it("the matrix: every permission set × every operation, on its own app and on another", async () => {
    const rows: string[] = [];
    for (const permissions of keySets) {
      const keys = await createKey("alpha", permissions);
      for (const operation of operations) {
        const own = await operation.run(keys, "alpha");
        const other = await operation.run(keys, "beta");
        const expectedOwn = permissions.includes(operation.needs) ? operation.allowed : 403;
        rows.push(
          `${permissions.join("+")} ${operation.name}: own ${own}/${expectedOwn}, other ${other}/${operation.otherApp}`,
        );
        expect({ keys: permissions, operation: operation.name, own, other }).toEqual({
          keys: permissions,
          operation: operation.name,
          own: expectedOwn,
          other: operation.otherApp,
        });
      }
    }
    expect(rows.length).toBe(keySets.length * operations.length);
  });

  it("an app key lists only its own app, and only with manage; only the admin creates apps", async () => {
    const manager = await createKey("alpha", ["manage"]);
    const listed = await as(manager, "GET", "/v1/apps");
    expect(listed.status).toBe(200);
    expect(listed.json<{ apps: { name: string }[]; total: number }>().apps.map((app) => app.name)).toEqual(["alpha"]);
    expect((await as(manager, "GET", "/v1/apps?ids=beta")).json<{ total: number }>().total).toBe(0);
    expect((await as(await createKey("alpha", ["query"]), "GET", "/v1/apps")).status).toBe(403);
    expect((await as(manager, "POST", "/v1/apps", { name: "gamma", origin: origin.url })).status).toBe(403);
  });

  it("a manage key deletes its own app only", async () => {
    expect((await admin("POST", "/v1/apps", { name: "doomed", origin: origin.url })).status).toBe(201);
    const doomedManager = await createKey("doomed", ["manage"]);
    expect((await as(await createKey("alpha", ["manage"]), "DELETE", "/v1/apps/doomed")).status).toBe(403);
    expect((await as(doomedManager, "DELETE", "/v1/apps/doomed")).status).toBe(200);
    // The app's keys went with it: the same name created again does not know them.
    expect((await admin("POST", "/v1/apps", { name: "doomed", origin: origin.url })).status).toBe(201);
    expect((await as(doomedManager, "GET", "/v1/apps/doomed")).status).toBe(401);
  });

  it("a revoked key fails with 401 on the very next request; listing never shows secrets", async () => {
    const keys = await createKey("alpha", ["submit", "query"]);
    expect((await as(keys, "GET", "/v1/tasks?app=alpha")).status).toBe(200);
    const listed = (await admin("GET", "/v1/apps/alpha/keys")).json<{ keys: Record<string, unknown>[] }>();
    const entry = listed.keys.find((key) => key["access_key"] === keys.accessKey);
    expect(entry).toMatchObject({ access_key: keys.accessKey, permissions: ["submit", "query"] });
    expect(JSON.stringify(listed)).not.toContain(keys.secretKey);
    expect(JSON.stringify((await admin("GET", "/v1/apps/alpha")).json())).not.toContain(keys.secretKey);

    expect((await admin("DELETE", `/v1/apps/alpha/keys/${keys.accessKey}`)).status).toBe(200);
    const after = await as(keys, "GET", "/v1/tasks?app=alpha");
    expect(after.status).toBe(401);
    expect(after.json<{ code: string }>().code).toBe("bad_token");
    expect((await signedCall(port, appHost("alpha"), "POST", "/job", { keys, body: "{}" })).status).toBe(401);
    expect((await admin("DELETE", `/v1/apps/alpha/keys/${keys.accessKey}`)).status).toBe(404);
  });

  it("forged keys are 401, whichever app they name and wherever they are used", async () => {
    const real = await createKey("alpha", ["submit", "query"]);
    const forged = [
      { accessKey: real.accessKey, secretKey: "not-the-secret" },
      { accessKey: "alpha.0123456789abcdef01234567", secretKey: real.secretKey },
      { accessKey: "beta.0123456789abcdef01234567", secretKey: "x" },
      { accessKey: "nosuchapp.0123456789abcdef01234567", secretKey: "x" },
    ];
    for (const keys of forged) {
      const results: HttpResult[] = [
        await signedCall(port, appHost("alpha"), "POST", "/job", { keys, body: "{}" }),
        await as(keys, "GET", "/v1/tasks?app=alpha"),
        await as(keys, "GET", `/v1/task/${"0".repeat(32)}`),
        await as(keys, "GET", "/v1/apps"),
      ];
      expect(results.map((result) => result.status)).toEqual([401, 401, 401, 401]);
    }
  });
});
