// Proves how a bearer token is read: the key pair of `Bearer <access key>:<secret key>`, refused over plain HTTP except to a loopback host, needing no signed date (nothing is signed), and compared in constant time with the key's secret.
import { describe, expect, it } from "vitest";
import { readProof, verifyProof } from "../../src/auth/credentials";
import { GatewayError } from "../../src/http/errors";

const rules = { urlTokenAllowed: false, requireSignedDate: true, nowMs: Date.now() };
const request = (url: string, authorization: string) => new Request(url, { headers: { authorization } });
const refusal = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return error instanceof GatewayError ? `${error.status} ${error.code}` : String(error);
  }
  return "accepted";
};

describe("bearer tokens", () => {
  it("are read over HTTPS, or to a loopback host, without a date even where dates are required", async () => {
    const proof = readProof(
      request("https://gateway.example.com/v1/apps", "Bearer shop.0123456789abcdef01234567:s3cret-Key_0"),
      rules,
    );
    expect(proof).toEqual({ kind: "bearer", accessKey: "shop.0123456789abcdef01234567", secret: "s3cret-Key_0" });
    expect(await verifyProof(proof, "s3cret-Key_0", new Uint8Array())).toBe(true);
    expect(await verifyProof(proof, "s3cret-Key_1", new Uint8Array())).toBe(false);
    expect(refusal(() => readProof(request("http://127.0.0.1:8787/v1/apps", "bearer admin:secret"), rules))).toBe(
      "accepted",
    );
    expect(refusal(() => readProof(request("http://async.localhost/v1/apps", "Bearer admin:secret"), rules))).toBe(
      "accepted",
    );
  });

  it("are refused over plain HTTP to any other host, and when malformed", () => {
    expect(refusal(() => readProof(request("http://gateway.example.com/v1/apps", "Bearer admin:secret"), rules))).toBe(
      "401 https_required",
    );
    expect(refusal(() => readProof(request("https://gateway.example.com/v1/apps", "Bearer admin"), rules))).toBe(
      "401 unauthorized",
    );
    expect(
      refusal(() => readProof(request("https://gateway.example.com/v1/apps", `Bearer a:${"x".repeat(600)}`), rules)),
    ).toBe("401 unauthorized");
  });
});
