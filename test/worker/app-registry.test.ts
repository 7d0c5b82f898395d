// Proves the app registry: a name held but never configured is not stuck, and a listing by 100 ids and a state answers.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/app-config";
import { registry } from "../../src/app/stubs";
import { CONTROL, call, uniqueApp } from "./helpers";

describe("app registry", () => {
  it("a name held by the registry but never configured is not stuck: create takes it, delete frees it", async () => {
    const stuck = uniqueApp("stuck");
    expect((await registry(env).register(defaultConfig(stuck, env.TEST_ORIGIN))).ok).toBe(true);
    expect(
      (await call(`${CONTROL}/v1/apps`, { body: JSON.stringify({ name: stuck, origin: env.TEST_ORIGIN }) })).status,
    ).toBe(201);
    const other = uniqueApp("stuck2");
    expect((await registry(env).register(defaultConfig(other, env.TEST_ORIGIN))).ok).toBe(true);
    expect((await call(`${CONTROL}/v1/apps/${other}`, { method: "DELETE" })).status).toBe(404);
    const listed = (await (await call(`${CONTROL}/v1/apps?ids=${other}`)).json()) as { total: number };
    expect(listed.total).toBe(0);
  });

  it("GET /v1/apps with 100 ids and a state answers (one bound parameter, not 101)", async () => {
    const names = Array.from({ length: 100 }, (_, i) => `n${i}-${uniqueApp("x")}`.slice(0, 60));
    const response = await call(`${CONTROL}/v1/apps?ids=${names.join(",")}&state=Active`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { total: number }).total).toBe(0);
  });
});
