// Proves host dispatch: which hosts are app submissions and which go to the control API, and that each front door takes its own paths exactly.
import { describe, expect, it } from "vitest";
import { isFunctionGraphPath } from "../../src/front-doors/functiongraph";
import { isTencentCiPath } from "../../src/front-doors/tencent-ci";
import { controlHostFor, routeHost } from "../../src/http/hosts";
import { appNumberOf, newTaskId } from "../../src/shared/task-id";

describe("routeHost", () => {
  it.each([
    ["demo.async.localhost:8787", { kind: "app", app: "demo" }],
    ["DEMO.Async.Localhost", { kind: "app", app: "demo" }],
    ["my-app.async.localhost", { kind: "app", app: "my-app" }],
    ["a.b.async.localhost", { kind: "app", app: "a.b" }],
    ["async.localhost:8787", { kind: "control" }],
    [".async.localhost", { kind: "control" }],
    ["localhost:8787", { kind: "control" }],
    ["127.0.0.1:8787", { kind: "control" }],
    ["[::1]:8787", { kind: "control" }],
  ])("%s", (host, expected) => {
    expect(routeHost(host, ".async.localhost")).toEqual(expected);
  });
});

describe("controlHostFor", () => {
  it("derives the control host from the app host, or uses the configured one", () => {
    expect(controlHostFor("demo.async.localhost:8787", ".async.localhost", "")).toBe("async.localhost:8787");
    expect(controlHostFor("demo.async.example.com", ".async.example.com", "api.example.com")).toBe("api.example.com");
  });
});

describe("task ids", () => {
  it("are 32 lowercase hex characters carrying the app number and time order", () => {
    const early = newTaskId(7, 1_700_000_000_000);
    const late = newTaskId(7, 1_700_000_000_001);
    expect(early).toMatch(/^[0-9a-f]{32}$/);
    expect(appNumberOf(early)).toBe(7);
    // The top bit marks a task stored in a shard (shards/routing.ts): app numbers stay below 2^31.
    expect(appNumberOf(newTaskId(0x7ffffffe, Date.now()))).toBe(0x7ffffffe);
    expect(early < late).toBe(true);
    expect(new Set(Array.from({ length: 1000 }, () => newTaskId(1, 1))).size).toBe(1000);
  });
  it("rejects what is not a task id", () => {
    expect(appNumberOf("01AA8888888888888888888888888888")).toBeNull();
    expect(appNumberOf("abc")).toBeNull();
  });
});

describe("front doors routed by exact paths", () => {
  it("FunctionGraph takes its namespace only, not other /v2/ paths that contain /fgs/", () => {
    expect(
      isFunctionGraphPath(
        "/v2/0123456789abcdef/fgs/functions/urn:fss:cn-north-4:p:function:default:f:latest/invocations-async",
      ),
    ).toBe(true);
    expect(isFunctionGraphPath("/v2/p/fgs/functions/f/invocations-async/")).toBe(true);
    // A Cloud Tasks queue of a project named "fgs", and a QStash destination URL with /fgs/ in it.
    expect(isFunctionGraphPath("/v2/projects/fgs/locations/us/queues/q/tasks")).toBe(false);
    expect(isFunctionGraphPath("/v2/publish/https://example.com/fgs/functions/f/invocations-async")).toBe(false);
    expect(isFunctionGraphPath("/v2/p/fgs/functions")).toBe(true); // its namespace: its own 404
    expect(isFunctionGraphPath("/v2/p/fgs/other")).toBe(false);
    expect(isTencentCiPath("/docqueue")).toBe(true);
    expect(isTencentCiPath("/docqueues")).toBe(false);
  });
});
