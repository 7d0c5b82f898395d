// The published Receiver (`asyncgate/receiver`, built to dist/ with its .d.ts) against signatures
// made by the `standardwebhooks` package: accepted as made, refused when tampered, stale, signed
// with another secret, or missing; a rotation's next secret accepted beside the current one.
import { Receiver, WebhookVerificationError } from "asyncgate/receiver";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";

const secret = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
const nextSecret = `whsec_${Buffer.from("fedcba9876543210fedcba9876543210").toString("base64")}`;

function signed(body: string, at = new Date(), withSecret = secret) {
  const id = "01a2134573220000000133d9a175df51";
  const signature = new Webhook(withSecret).sign(id, at, body);
  return {
    body,
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": signature,
    },
  };
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WebhookVerificationError);
    return (error as WebhookVerificationError).code;
  }
  throw new Error("verified");
}

describe("Receiver (asyncgate/receiver)", () => {
  const receiver = new Receiver({ signingSecret: secret });

  it("accepts what standardwebhooks signs: string, bytes, Headers or a plain record", async () => {
    const request = signed('{"a":1}');
    expect(await receiver.verify(request)).toBe(true);
    expect(
      await receiver.verify({ body: new TextEncoder().encode(request.body), headers: new Headers(request.headers) }),
    ).toBe(true);
    const upper = Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name.toUpperCase(), value]),
    );
    expect(await receiver.verify({ body: request.body, headers: upper })).toBe(true);
  });

  it("refuses a tampered body, a stale or future timestamp, another secret and missing headers", async () => {
    const request = signed('{"a":1}');
    expect(await code(receiver.verify({ ...request, body: '{"a":2}' }))).toBe("invalid_signature");
    expect(await code(receiver.verify(signed('{"a":1}', new Date(Date.now() - 10 * 60_000))))).toBe(
      "timestamp_out_of_tolerance",
    );
    expect(await code(receiver.verify(signed('{"a":1}', new Date(Date.now() + 10 * 60_000))))).toBe(
      "timestamp_out_of_tolerance",
    );
    expect(await code(receiver.verify(signed('{"a":1}', new Date(), nextSecret)))).toBe("invalid_signature");
    expect(await code(receiver.verify({ body: "{}", headers: {} }))).toBe("missing_headers");
    expect(
      await code(receiver.verify({ ...request, headers: { ...request.headers, "webhook-timestamp": "soon" } })),
    ).toBe("invalid_timestamp");
  });

  it("accepts the next secret during a rotation, and either of two signatures", async () => {
    const rotating = new Receiver({ signingSecret: secret, nextSigningSecret: nextSecret });
    expect(await rotating.verify(signed("x", new Date(), nextSecret))).toBe(true);
    const both = signed("x");
    const second = signed("x", new Date(Number(both.headers["webhook-timestamp"]) * 1000), nextSecret);
    const twoSignatures = {
      ...both,
      headers: {
        ...both.headers,
        "webhook-signature": `${second.headers["webhook-signature"]} ${both.headers["webhook-signature"]}`,
      },
    };
    expect(await receiver.verify(twoSignatures)).toBe(true);
  });

  it("refuses a secret that is not whsec_ base64 at construction", () => {
    expect(() => new Receiver({ signingSecret: "whsec_not base64!" })).toThrow(TypeError);
  });
});
