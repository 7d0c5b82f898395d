// Proves the demo origin (scripts/origin.mjs) verifies the deliveries of any app it is told about: POST /__trust with the JSON `asyncgate apps create` printed, then its signatures verify and a forgery gets 401.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { signatureHeaders } from "../../src/delivery/signature";

interface Origin {
  url: string;
  close: () => Promise<void>;
}

const newSecret = () => `whsec_${randomBytes(24).toString("base64")}`;

describe("the demo origin", () => {
  let origin: Origin;
  const told: string[] = [];
  beforeAll(async () => {
    origin = (await startOrigin({ quiet: true, onTrust: (secret: string) => told.push(secret) })) as Origin;
  });
  afterAll(() => origin.close());

  const deliver = async (secret: string) => {
    const body = new TextEncoder().encode('{"order":1}');
    const headers = await signatureHeaders([secret], "01a2134573220000000133d9a175df51", Date.now(), body);
    return fetch(`${origin.url}/orders`, { method: "POST", headers, body });
  };

  it("trusts an app's signing secret it is told, verifies its deliveries and refuses others", async () => {
    const shop = newSecret();
    // Before it is told of any app it checks nothing (the echo says so).
    const unchecked = await deliver(shop);
    expect(unchecked.status).toBe(200);
    expect(((await unchecked.json()) as { signature_verified: boolean | null }).signature_verified).toBeNull();

    const created = JSON.stringify({ name: "shop", origin: origin.url, signing_secret: shop });
    expect((await fetch(`${origin.url}/__trust`, { method: "POST", body: created })).status).toBe(204);
    expect(told).toEqual([shop]);

    const verified = await deliver(shop);
    expect(verified.status).toBe(200);
    expect(((await verified.json()) as { signature_verified: boolean | null }).signature_verified).toBe(true);
    expect((await deliver(newSecret())).status).toBe(401);
  });

  it("answers 400 to a body without a signing secret", async () => {
    for (const body of ["not json", "{}", '{"signing_secret":"plain"}']) {
      expect((await fetch(`${origin.url}/__trust`, { method: "POST", body })).status).toBe(400);
    }
  });
});
