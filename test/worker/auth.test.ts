// Proves authentication inside workerd: malformed credentials are 401 JSON on both hosts, URL tokens
// work only on the feed's upgrade (and never reach a task or an origin), REQUIRE_SIGNED_DATE, app keys
// verified by their app's object, and key secrets sealed at rest.
import { env, exports } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { openSecret } from "../../src/auth/key-vault";
import { formatQiniuDate } from "../../src/auth/qiniu";
import { signUrl } from "../../src/auth/url-token";
import worker from "../../src/index";
import { appQueue } from "../../src/app/stubs";
import {
  CONTROL,
  appUrl,
  call,
  createApp,
  getTask,
  received,
  signedRequest,
  submit,
  uniqueApp,
  waitForState,
} from "./helpers";

async function expectError(response: Response, status: number, code?: string): Promise<void> {
  const body = (await response.json()) as { error: string; code: string; req_id: string };
  expect(response.status).toBe(status);
  if (code) expect(body.code).toBe(code);
  expect(response.headers.get("content-type")).toBe("application/json");
  expect(body.req_id).toBe(response.headers.get("x-reqid"));
}

const qiniuDate = formatQiniuDate;

async function createKey(app: string, permissions: string[], keys?: { accessKey: string; secretKey: string }) {
  const response = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions }), keys });
  if (response.status !== 201) throw new Error(`createKey: ${response.status} ${await response.text()}`);
  const created = (await response.json()) as { access_key: string; secret_key: string };
  return { accessKey: created.access_key, secretKey: created.secret_key };
}

describe("malformed credentials", () => {
  const app = uniqueApp("creds");
  beforeAll(async () => {
    await createApp(app);
  });

  it.each([
    ["empty", ""],
    ["no colon", "Qiniu abcdef"],
    ["empty access key", "Qiniu :c2lnbg=="],
    ["unknown key", "Qiniu nobody:c2lnbg=="],
    ["unknown app key", `Qiniu ${"x".repeat(10)}.0123456789abcdef01234567:c2lnbg==`],
    ["wrong scheme", "Bearer abc:def"],
    ["10 KB header", `Qiniu ${"a".repeat(10_000)}:c2lnbg==`],
    ["bad characters", "Qiniu ak:sig nature"],
  ])("%s → 401 JSON on the control and the app host", async (_name, authorization) => {
    for (const url of [`${CONTROL}/v1/apps`, appUrl(app, "/x")]) {
      const request = new Request(url, {
        method: url.startsWith(CONTROL) ? "GET" : "POST",
        headers: { authorization, host: new URL(url).host },
      });
      await expectError(await exports.default.fetch(request), 401);
    }
  });
});

describe("URL tokens", () => {
  const app = uniqueApp("urltok");
  const base = () => `${CONTROL}/v1/tasks?app=${app}`;
  const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
  const sign = (url: string, deadline: number) => signUrl(url, deadline, env.ADMIN_ACCESS_KEY, env.ADMIN_SECRET_KEY);
  beforeAll(async () => {
    await createApp(app);
  });

  it("a revoked key's signed URL stops opening the feed at once, before its deadline", async () => {
    const key = await createKey(app, ["subscribe"]);
    const url = await signUrl(base(), inAnHour(), key.accessKey, key.secretKey);
    const open = async () => exports.default.fetch(new Request(url, { headers: { upgrade: "websocket" } }));
    const first = await open();
    expect(first.status).toBe(101);
    first.webSocket!.accept();
    first.webSocket!.close(1000);
    expect((await call(`${CONTROL}/v1/apps/${app}/keys/${key.accessKey}`, { method: "DELETE" })).status).toBe(200);
    await expectError(await open(), 401, "bad_token");
  });

  it("are ignored as authentication anywhere but the feed's WebSocket upgrade", async () => {
    const id = await submit(app, "/x", { body: "{}", headers: { "asyncgate-delay": "1h" } });
    for (const [method, url] of [
      ["GET", base()],
      ["GET", `${CONTROL}/v1/task/${id}`],
      ["GET", `${CONTROL}/v1/apps`],
      ["POST", appUrl(app, "/x")],
    ] as const) {
      const signed = await sign(url, inAnHour());
      await expectError(
        await exports.default.fetch(new Request(signed, { method, headers: { host: new URL(url).host } })),
        401,
        "unauthorized",
      );
    }
    const upgrade = await exports.default.fetch(
      new Request(await sign(base(), inAnHour()), { headers: { upgrade: "websocket" } }),
    );
    expect(upgrade.status).toBe(101);
    upgrade.webSocket!.accept();
    upgrade.webSocket!.close(1000);
  });

  it("may not be valid for more than 24 hours", async () => {
    const tooFar = Math.floor(Date.now() / 1000) + 24 * 3600 + 60;
    const response = await exports.default.fetch(
      new Request(await sign(base(), tooFar), { headers: { upgrade: "websocket" } }),
    );
    await expectError(response, 401, "token_deadline_too_far");
  });

  it("of an app key with subscribe open its app's feed, and not another app's", async () => {
    const keys = await createKey(app, ["subscribe"]);
    const good = await exports.default.fetch(
      new Request(await signUrl(base(), inAnHour(), keys.accessKey, keys.secretKey), {
        headers: { upgrade: "websocket" },
      }),
    );
    expect(good.status).toBe(101);
    good.webSocket!.accept();
    good.webSocket!.close(1000);
    const other = uniqueApp("urlother");
    await createApp(other);
    const otherUrl = `${CONTROL}/v1/tasks?app=${other}`;
    const refused = await exports.default.fetch(
      new Request(await signUrl(otherUrl, inAnHour(), keys.accessKey, keys.secretKey), {
        headers: { upgrade: "websocket" },
      }),
    );
    await expectError(refused, 403, "forbidden");
    const queryOnly = await createKey(app, ["query"]);
    const noPermission = await exports.default.fetch(
      new Request(await signUrl(base(), inAnHour(), queryOnly.accessKey, queryOnly.secretKey), {
        headers: { upgrade: "websocket" },
      }),
    );
    await expectError(noPermission, 403, "forbidden");
  });

  it("are never recorded into raw_query nor forwarded to the origin", async () => {
    const signed = await sign(appUrl(app, "/deliver?a=1&b=two"), inAnHour());
    const id = await submit(app, new URL(signed).pathname + new URL(signed).search, { body: "{}" });
    const task = await waitForState(id, [10]);
    expect(task.request.raw_query).toBe("?a=1&b=two");
    const [delivery] = await received(id);
    expect(delivery!.url).toBe("/deliver?a=1&b=two");
    const onlyToken = await sign(appUrl(app, "/bare"), inAnHour());
    const bare = await submit(app, new URL(onlyToken).pathname + new URL(onlyToken).search, {
      body: "{}",
      headers: { "asyncgate-delay": "1h" },
    });
    expect((await getTask(bare)).request.raw_query).toBe("");
  });
});

describe("the replay window", () => {
  const app = uniqueApp("date");
  beforeAll(async () => {
    await createApp(app);
  });
  /** The Worker with REQUIRE_SIGNED_DATE turned on. */
  const strict = (request: Request) =>
    worker.fetch(request as Parameters<typeof worker.fetch>[0], { ...env, REQUIRE_SIGNED_DATE: "true" });

  it("REQUIRE_SIGNED_DATE=true refuses requests without a signed X-Qiniu-Date, on both hosts", async () => {
    await expectError(await strict(await signedRequest(`${CONTROL}/v1/apps`)), 401, "date_required");
    await expectError(await strict(await signedRequest(appUrl(app, "/x"), { body: "{}" })), 401, "date_required");
    const dated = await signedRequest(`${CONTROL}/v1/apps`, { headers: { "x-qiniu-date": qiniuDate(Date.now()) } });
    expect((await strict(dated)).status).toBe(200);
    const datedSubmit = await signedRequest(appUrl(app, "/x"), {
      body: "{}",
      headers: { "x-qiniu-date": qiniuDate(Date.now()) },
    });
    expect((await strict(datedSubmit)).status).toBe(202);
  });

  it("a date more than 15 minutes off is refused with or without the setting; the date is signed", async () => {
    const stale = await signedRequest(appUrl(app, "/x"), {
      body: "{}",
      headers: { "x-qiniu-date": qiniuDate(Date.now() - 16 * 60_000) },
    });
    await expectError(await exports.default.fetch(stale), 401, "request_expired");
    const ahead = await signedRequest(`${CONTROL}/v1/apps`, {
      headers: { "x-qiniu-date": qiniuDate(Date.now() + 16 * 60_000) },
    });
    await expectError(await strict(ahead), 401, "request_expired");
    // Changing the date after signing breaks the signature.
    const signed = await signedRequest(`${CONTROL}/v1/apps`, { headers: { "x-qiniu-date": qiniuDate(Date.now()) } });
    const moved = new Request(signed, { headers: new Headers(signed.headers) });
    moved.headers.set("x-qiniu-date", qiniuDate(Date.now() + 60_000));
    await expectError(await exports.default.fetch(moved), 401, "bad_token");
  });
});

describe("control headers under the signature", () => {
  it("a control header sent signed (X-Qiniu-Asyncgate-Callback) cannot be changed in a replay", async () => {
    const app = uniqueApp("ctlsig");
    await createApp(app);
    const request = await signedRequest(appUrl(app, "/x"), {
      method: "POST",
      body: "{}",
      headers: { "x-qiniu-asyncgate-callback": `${env.TEST_ORIGIN}/mine` },
    });
    const replay = new Request(request.clone(), { headers: new Headers(request.headers) });
    replay.headers.set("x-qiniu-asyncgate-callback", `${env.TEST_ORIGIN}/theirs`);
    expect((await exports.default.fetch(request)).status).toBe(202);
    await expectError(await exports.default.fetch(replay), 401);
  });
});

describe("app keys", () => {
  it("a key without query cannot set a callback (the callback would read the origin's response)", async () => {
    const app = uniqueApp("cbperm");
    await createApp(app);
    const submitter = await createKey(app, ["submit"]);
    const reader = await createKey(app, ["submit", "query"]);
    const withCallback = (keys: { accessKey: string; secretKey: string }) =>
      call(appUrl(app, "/cb"), {
        method: "POST",
        body: "{}",
        keys,
        headers: { "asyncgate-callback": `${env.TEST_ORIGIN}/hook` },
      });
    await expectError(await withCallback(submitter), 403, "forbidden");
    expect((await withCallback(reader)).status).toBe(202);
    // Without a callback the submit-only key submits as before.
    expect((await call(appUrl(app, "/plain"), { method: "POST", body: "{}", keys: submitter })).status).toBe(202);
  });

  const app = uniqueApp("keys");
  beforeAll(async () => {
    await createApp(app);
  });

  it("submit with a submit key; a query key cannot submit and a submit key cannot read", async () => {
    const submitter = await createKey(app, ["submit"]);
    const reader = await createKey(app, ["query"]);
    const id = await submit(app, "/by-key", { body: '{"k":1}', keys: submitter });
    expect((await call(`${CONTROL}/v1/task/${id}`, { keys: reader })).status).toBe(200);
    await expectError(await call(`${CONTROL}/v1/task/${id}`, { keys: submitter }), 403, "forbidden");
    await expectError(await call(appUrl(app, "/x"), { body: "{}", keys: reader }), 403, "forbidden");
    // A submit key's signature covers the body like any other.
    const signed = await signedRequest(appUrl(app, "/x"), { body: '{"amount":1}', keys: submitter });
    await expectError(await exports.default.fetch(new Request(signed, { body: '{"amount":9}' })), 401, "bad_token");
  });

  it("a manage key creates keys for its own app", async () => {
    const manager = await createKey(app, ["manage"]);
    const minted = await createKey(app, ["query"], manager);
    expect((await call(`${CONTROL}/v1/tasks?app=${app}`, { keys: minted })).status).toBe(200);
  });

  it("400 for bad permission lists", async () => {
    for (const body of [
      '{"permissions":[]}',
      '{"permissions":["root"]}',
      '{"permissions":["query","query"]}',
      '{"permissions":"query"}',
      "{}",
      "[]",
    ]) {
      await expectError(await call(`${CONTROL}/v1/apps/${app}/keys`, { body }), 400, "invalid_permissions");
    }
  });

  it("stores secrets sealed: the table holds no secret, and it opens only under the master secret with its own access key", async () => {
    const keys = await createKey(app, ["query"]);
    const row = await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) =>
      state.storage.sql
        .exec<{ sealed_secret: ArrayBuffer }>(
          "SELECT sealed_secret FROM access_keys WHERE access_key = ?",
          keys.accessKey,
        )
        .one(),
    );
    const sealed = row.sealed_secret;
    expect(new TextDecoder("latin1").decode(sealed)).not.toContain(keys.secretKey);
    expect(await openSecret(env.KEY_ENCRYPTION_SECRET, keys.accessKey, sealed)).toBe(keys.secretKey);
    expect(await openSecret("another master", keys.accessKey, sealed)).toBeNull();
    expect(await openSecret(env.KEY_ENCRYPTION_SECRET, `${app}.000000000000000000000000`, sealed)).toBeNull();
  });
});
