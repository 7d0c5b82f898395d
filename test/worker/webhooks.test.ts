// Deliveries and notifications in Standard Webhooks form: verified by the `standardwebhooks`
// npm package and by asyncgate's own Receiver, with a real origin inside the test pool; a
// tampered body, a stale timestamp and a rotated-out secret refused.
import { env } from "cloudflare:workers";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import type { AppIdentity } from "../../src/app/signing-secrets";
import { Receiver, WebhookVerificationError } from "../../src/receiver";
import { appQueue } from "../../src/app/stubs";
import { CONTROL, call, createApp, received, submit, uniqueApp, waitForState } from "./helpers";

interface Delivered {
  headers: Record<string, string>;
  body: string;
}

/** The one request the origin received for `taskId`: its headers and body as text. */
async function deliveredFor(taskId: string): Promise<Delivered> {
  const requests = await received(taskId);
  expect(requests.length).toBeGreaterThanOrEqual(1);
  const last = requests[requests.length - 1]!;
  const headers = Object.fromEntries(
    Object.entries(last.headers).map(([name, value]) => [
      name,
      Array.isArray(value) ? value.join(", ") : String(value),
    ]),
  );
  return { headers, body: new TextDecoder().decode(Uint8Array.from(atob(last.body), (c) => c.charCodeAt(0))) };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WebhookVerificationError);
    return (error as WebhookVerificationError).code;
  }
  throw new Error("verified");
}

async function deliveredTask(app: string, body: string): Promise<Delivered> {
  const id = await submit(app, "/hook", { body });
  await waitForState(id, [10]);
  return deliveredFor(id);
}

describe("deliveries in Standard Webhooks form", () => {
  it("a new app's signing secret is whsec_ and 32 random bytes", async () => {
    const created = await createApp(uniqueApp("whsec"));
    const secret = created["signing_secret"] as string;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(atob(secret.slice(6)).length).toBe(32);
  });

  it("a delivery verifies with the standardwebhooks package and with Receiver; tampering is refused", async () => {
    const app = uniqueApp("wh");
    const secret = (await createApp(app))["signing_secret"] as string;
    const delivered = await deliveredTask(app, '{"order":42}');
    expect(delivered.headers["webhook-id"]).toMatch(/^[0-9a-f]{32}$/);
    expect(delivered.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(delivered.headers["asyncgate-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);

    expect(new Webhook(secret).verify(delivered.body, delivered.headers)).toEqual({ order: 42 });
    expect(await new Receiver({ signingSecret: secret }).verify(delivered)).toBe(true);

    const tampered = { ...delivered, body: '{"order":43}' };
    expect(() => new Webhook(secret).verify(tampered.body, tampered.headers)).toThrow();
    expect(await refusal(new Receiver({ signingSecret: secret }).verify(tampered))).toBe("invalid_signature");

    const timestamp = Number(delivered.headers["webhook-timestamp"]);
    expect(
      await refusal(new Receiver({ signingSecret: secret }).verify({ ...delivered, nowSeconds: timestamp + 600 })),
    ).toBe("timestamp_out_of_tolerance");
    expect(
      await new Receiver({ signingSecret: secret }).verify({
        ...delivered,
        nowSeconds: timestamp + 600,
        toleranceSeconds: 900,
      }),
    ).toBe(true);

    const otherSecret = (await createApp(uniqueApp("wh")))["signing_secret"] as string;
    expect(await refusal(new Receiver({ signingSecret: otherSecret }).verify(delivered))).toBe("invalid_signature");
    const { "webhook-id": _id, ...withoutId } = delivered.headers;
    expect(await refusal(new Receiver({ signingSecret: secret }).verify({ ...delivered, headers: withoutId }))).toBe(
      "missing_headers",
    );
  });

  it("a callback notification carries the same signatures", async () => {
    const app = uniqueApp("whcb");
    const secret = (await createApp(app))["signing_secret"] as string;
    const id = await submit(app, "/job", {
      body: "{}",
      headers: { "asyncgate-callback": `${env.TEST_ORIGIN}/callback` },
    });
    await waitForState(id, [10]);
    let callback: { headers: Record<string, string | string[]>; body: string; url: string } | undefined;
    for (let i = 0; i < 100 && !callback; i++) {
      callback = (await received(id)).find((request) => request.url.startsWith("/callback"));
      if (!callback) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(callback).toBeDefined();
    const body = new TextDecoder().decode(Uint8Array.from(atob(callback!.body), (c) => c.charCodeAt(0)));
    const headers = Object.fromEntries(Object.entries(callback!.headers).map(([name, value]) => [name, String(value)]));
    expect((new Webhook(secret).verify(body, headers) as { id: string }).id).toBe(id);
    expect(await new Receiver({ signingSecret: secret }).verify({ body, headers })).toBe(true);
  });

  it("after a rotation both secrets verify for 24 h, then only the new one", async () => {
    const app = uniqueApp("rot");
    const old = (await createApp(app))["signing_secret"] as string;
    const rotation = await call(`${CONTROL}/v1/apps/${app}/signing-secret/rotate`, { method: "POST" });
    expect(rotation.status).toBe(200);
    const rotated = (await rotation.json()) as { signing_secret: string; previous_valid_until: number };
    expect(rotated.signing_secret).toMatch(/^whsec_/);
    expect(rotated.signing_secret).not.toBe(old);
    expect(rotated.previous_valid_until - Date.now() / 1000).toBeGreaterThan(24 * 3600 - 60);

    const during = await deliveredTask(app, '{"during":true}');
    expect(during.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(await new Receiver({ signingSecret: old }).verify(during)).toBe(true);
    expect(await new Receiver({ signingSecret: rotated.signing_secret }).verify(during)).toBe(true);
    expect(new Webhook(old).verify(during.body, during.headers)).toEqual({ during: true });

    // The grace has passed: the old secret signs no more.
    await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) => {
      const identity = JSON.parse(
        state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'identity'").one().value,
      ) as AppIdentity;
      identity.previousSigningSecretUntilMs = Date.now() - 1;
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'identity'", JSON.stringify(identity));
    });
    await evictDurableObject(appQueue(env, app)); // it reads its identity again when it wakes
    const after = await deliveredTask(app, '{"after":true}');
    expect(after.headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(await refusal(new Receiver({ signingSecret: old }).verify(after))).toBe("invalid_signature");
    expect(() => new Webhook(old).verify(after.body, after.headers)).toThrow();
    expect(await new Receiver({ signingSecret: old, nextSigningSecret: rotated.signing_secret }).verify(after)).toBe(
      true,
    );
  });

  it("rotating needs manage; the new secret is never shown again", async () => {
    const app = uniqueApp("rotkey");
    await createApp(app);
    const keyResponse = await call(`${CONTROL}/v1/apps/${app}/keys`, {
      body: JSON.stringify({ permissions: ["submit"] }),
    });
    const key = (await keyResponse.json()) as { access_key: string; secret_key: string };
    const refused = await call(`${CONTROL}/v1/apps/${app}/signing-secret/rotate`, {
      method: "POST",
      keys: { accessKey: key.access_key, secretKey: key.secret_key },
    });
    expect(refused.status).toBe(403);
    await call(`${CONTROL}/v1/apps/${app}/signing-secret/rotate`, { method: "POST" });
    const shown = await (await call(`${CONTROL}/v1/apps/${app}`)).text();
    expect(shown).not.toContain("whsec_");
  });
});
