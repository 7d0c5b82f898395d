// Proves the app registry: a name held but never configured is not stuck, a create that lost the race for a name leaves the winner listed, and a listing by 100 ids and a state answers.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/app-config";
import { appQueue, registry } from "../../src/app/stubs";
import { yieldName } from "../../src/control/apps";
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

  it("a create that loses the race for a name after taking its entry away lists the winner again", async () => {
    const name = uniqueApp("race");
    const config = defaultConfig(name, env.TEST_ORIGIN);
    // Create A registers the name and is still configuring its object …
    const a = await registry(env).register(config);
    if (!a.ok) throw new Error("register");
    // … when create B finds the name held by no configured object, takes it over and registers anew …
    expect(await registry(env).remove(name, a.value)).toBe(true);
    const b = await registry(env).register(config);
    if (!b.ok) throw new Error("register");
    // … A's configure wins the object; B's is refused, and B lets its number go.
    const identity = {
      number: a.value,
      createdMs: Date.now(),
      signingSecret: "whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdA==",
    };
    expect((await appQueue(env, name).configure(config, identity)).ok).toBe(true);
    await yieldName(env, name, b.value);
    const listed = (await (await call(`${CONTROL}/v1/apps?ids=${name}`)).json()) as { total: number };
    expect(listed.total).toBe(1);
    const submitted = await call(`http://${name}.async.localhost/x`, { method: "POST", body: "{}" });
    const { id } = (await submitted.json()) as { id: string };
    expect((await call(`${CONTROL}/v1/task/${id}`)).status).toBe(200);
  });

  it("GET /v1/apps with 100 ids and a state answers (one bound parameter, not 101)", async () => {
    const names = Array.from({ length: 100 }, (_, i) => `n${i}-${uniqueApp("x")}`.slice(0, 60));
    const response = await call(`${CONTROL}/v1/apps?ids=${names.join(",")}&state=Active`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { total: number }).total).toBe(0);
  });
});
