// Proves bearer tokens (`Authorization: Bearer <access key>:<secret key>`, for clients that can send nothing else): the admin pair and app keys work on the control API and on submissions, a wrong secret or another app's key is refused as with signed requests, and a forged key reaches no object.
import { env, exports } from "cloudflare:workers";
import { listDurableObjectIds } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { randomHex } from "../../src/shared/encoding";
import { CONTROL, appUrl, call, createApp, uniqueApp } from "./helpers";

const bearer = (url: string, token: string, init: RequestInit = {}) =>
  exports.default.fetch(
    new Request(url, {
      ...init,
      headers: { authorization: `Bearer ${token}`, host: new URL(url).host, ...(init.headers ?? {}) },
    }),
  );

async function newKey(app: string, permissions: string[]): Promise<string> {
  const response = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions }) });
  const key = (await response.json()) as { access_key: string; secret_key: string };
  return `${key.access_key}:${key.secret_key}`;
}

describe("bearer tokens", () => {
  it("the admin pair and an app key work as bearer tokens; a wrong secret, another app's key and a forged key are refused", async () => {
    const app = uniqueApp("bearer");
    const other = uniqueApp("bearer2");
    await createApp(app);
    await createApp(other);
    const admin = `${env.ADMIN_ACCESS_KEY}:${env.ADMIN_SECRET_KEY}`;
    const key = await newKey(app, ["submit", "query"]);

    const listed = await bearer(`${CONTROL}/v1/apps`, admin);
    expect(listed.status).toBe(200);
    // A submission with a control header (no signature to cover it: the token is the secret).
    const submitted = await bearer(appUrl(app, "/hello"), key, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json", "asyncgate-delay": "1h" },
    });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: string };
    const read = await bearer(`${CONTROL}/v1/task/${id}`, key);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id, state: 0 });

    const wrongSecret = await bearer(`${CONTROL}/v1/task/${id}`, `${key.split(":")[0]}:${randomHex(20)}`);
    expect(wrongSecret.status).toBe(401);
    const wrongAdmin = await bearer(`${CONTROL}/v1/apps`, `${env.ADMIN_ACCESS_KEY}:wrong`);
    expect(wrongAdmin.status).toBe(401);
    const otherApp = await bearer(appUrl(other, "/x"), key, { method: "POST", body: "{}" });
    expect(otherApp.status).toBe(403);
    const malformed = await bearer(`${CONTROL}/v1/apps`, "no-colon-here");
    expect(malformed.status).toBe(401);
    expect(await malformed.json()).toMatchObject({ code: "unauthorized" });

    // Forged keys (no MAC of this gateway) are refused in the Worker: no object is created.
    const objects = (await listDurableObjectIds(env.APP_QUEUE)).length;
    for (let i = 0; i < 20; i++) {
      const ghost = uniqueApp("ghost");
      const response = await bearer(appUrl(ghost, "/x"), `${ghost}.${randomHex(12)}:${randomHex(20)}`, {
        method: "POST",
        body: "{}",
      });
      expect(response.status).toBe(401);
    }
    expect((await listDurableObjectIds(env.APP_QUEUE)).length).toBe(objects);
  });
});
