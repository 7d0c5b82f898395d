// Proves the one error boundary: SPEC §8 bodies, 503 for a busy platform, 500 without internals.
import { describe, expect, it } from "vitest";
import { GatewayError, renderError } from "../../src/http/errors";

describe("renderError", () => {
  it("answers 503 with Retry-After for a transient Durable Object error, 500 for anything else", async () => {
    const overloaded = Object.assign(new Error("Durable Object is overloaded."), {
      overloaded: true,
      retryable: false,
    });
    const busy = renderError(overloaded, "r1", "test");
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect(await busy.json()).toEqual({
      error: "the gateway is busy; retry shortly",
      code: "unavailable",
      req_id: "r1",
    });
    const broken = renderError(new Error("boom: secret detail"), "r2", "test");
    expect(broken.status).toBe(500);
    expect(await broken.text()).not.toContain("secret detail");
  });

  it("renders a GatewayError with its status, code and the request id", async () => {
    const response = renderError(new GatewayError(413, "body_too_large", "too big"), "r3", "test");
    expect(response.status).toBe(413);
    expect(response.headers.get("x-reqid")).toBe("r3");
    expect(await response.json()).toEqual({ error: "too big", code: "body_too_large", req_id: "r3" });
  });
});
