// Proves unauthenticated traffic never reaches an object: 1,000 forged or unsigned requests
// across the control API, submissions and the live feed are refused in the Worker, creating no
// Durable Object and making no object call (so writing no row), also when they name a real app.
import { env, exports } from "cloudflare:workers";
import { listDurableObjectIds } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { isGenuineAccessKey } from "../../src/auth/access-keys";
import { masterSecret } from "../../src/auth/key-vault";
import { signUrl } from "../../src/auth/url-token";
import { randomHex } from "../../src/shared/encoding";
import { CONTROL, appUrl, call, createApp, signedRequest, sql, submit, uniqueApp, waitForState } from "./helpers";

/** What the Worker and the named apps' objects have spent, from `GET /v1/meters` (itself one object call per app). */
async function spent(apps: string[]): Promise<{ do_requests: number; sql_rows_written: number }> {
  const response = await call(`${CONTROL}/v1/meters?apps=${apps.join(",")}`);
  const { meters } = (await response.json()) as { meters: { do_requests: number; sql_rows_written: number } };
  return { do_requests: meters.do_requests, sql_rows_written: meters.sql_rows_written };
}

const forgedKey = (app: string) => ({ accessKey: `${app}.${randomHex(12)}`, secretKey: randomHex(20) });

describe("forged and unauthenticated requests", () => {
  it("keys the gateway makes carry a MAC under its secret; made-up ones do not", async () => {
    const app = uniqueApp("mac");
    await createApp(app);
    const created = (await (
      await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["submit"] }) })
    ).json()) as { access_key: string };
    const master = masterSecret(env);
    expect(await isGenuineAccessKey(created.access_key, master)).toBe(true);
    expect(await isGenuineAccessKey(forgedKey(app).accessKey, master)).toBe(false);
    // The MAC covers the app: the same id under another app's name is not genuine.
    expect(await isGenuineAccessKey(created.access_key.replace(app, uniqueApp("other")), master)).toBe(false);
  });

  it("1,000 of them across control, submit and feed routes create no object and make no object call", async () => {
    const app = uniqueApp("victim");
    await createApp(app);
    const taskId = await submit(app, "/hello", { body: "{}" });
    await waitForState(taskId, [10]); // its delivery's calls are done before counting
    const objectsBefore = (await listDurableObjectIds(env.APP_QUEUE)).length;
    const before = await spent([app]);

    const kinds: (() => Promise<Request>)[] = [
      // Submissions: a made-up key of a real app, of an app that does not exist, none at all, a malformed one.
      () => signedRequest(appUrl(app, "/x"), { method: "POST", body: "{}", keys: forgedKey(app) }),
      () => {
        const name = uniqueApp("ghost");
        return signedRequest(appUrl(name, "/x"), { method: "POST", body: "{}", keys: forgedKey(name) });
      },
      () => signedRequest(appUrl(app, "/x"), { method: "POST", body: "{}", unsigned: true }),
      () =>
        signedRequest(appUrl(app, "/x"), { method: "POST", body: "{}", keys: { accessKey: "nodot", secretKey: "x" } }),
      // Control: the app, a real task id, an unknown task id, the admin's key with a wrong secret.
      () => signedRequest(`${CONTROL}/v1/apps/${app}`, { keys: forgedKey(app) }),
      () => signedRequest(`${CONTROL}/v1/task/${taskId}`, { keys: forgedKey(app) }),
      () => signedRequest(`${CONTROL}/v1/task/${randomHex(16)}`, { keys: forgedKey(uniqueApp("ghost")) }),
      () =>
        signedRequest(`${CONTROL}/v1/apps/${app}/keys`, {
          keys: { accessKey: env.ADMIN_ACCESS_KEY, secretKey: "wrong" },
        }),
      // The live feed: a forged key in the header, and in a signed URL (browsers' form).
      () =>
        signedRequest(`${CONTROL}/v1/tasks?app=${app}&since=0`, {
          keys: forgedKey(app),
          headers: { upgrade: "websocket" },
        }),
      async () => {
        const key = forgedKey(app);
        const url = await signUrl(
          `${CONTROL}/v1/tasks?app=${app}`,
          Math.floor(Date.now() / 1000) + 60,
          key.accessKey,
          key.secretKey,
        );
        return new Request(url, { headers: { upgrade: "websocket" } });
      },
    ];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const response = await exports.default.fetch(await kinds[i % kinds.length]!());
      await response.body?.cancel();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }

    expect(Object.fromEntries(statuses)).toEqual({ 401: 1000 });
    expect((await listDurableObjectIds(env.APP_QUEUE)).length).toBe(objectsBefore);
    const after = await spent([app]);
    // The second meters call is the only object call in between.
    expect({
      do_requests: after.do_requests - before.do_requests,
      rows: after.sql_rows_written - before.sql_rows_written,
    }).toEqual({
      do_requests: 1,
      rows: 0,
    });
  }, 60_000);

  it("a genuine key of an app that was deleted leaves its object without tables", async () => {
    const app = uniqueApp("gone");
    await createApp(app);
    const key = (await (
      await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["submit"] }) })
    ).json()) as { access_key: string; secret_key: string };
    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "DELETE" })).status).toBe(200);
    const other = uniqueApp("never");
    // A name that never was an app: the admin asks, the object answers 404 and stays empty.
    expect((await call(`${CONTROL}/v1/apps/${other}`)).status).toBe(404);
    const before = await spent([app, other]);
    const response = await call(appUrl(app, "/x"), {
      method: "POST",
      body: "{}",
      keys: { accessKey: key.access_key, secretKey: key.secret_key },
    });
    expect(response.status).toBe(401);
    const after = await spent([app, other]);
    expect(after.sql_rows_written - before.sql_rows_written).toBe(0);
    const tables = await sql(other)((storage) =>
      storage.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'").toArray(),
    );
    expect(tables).toEqual([]);
  });
});
