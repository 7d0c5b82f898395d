// `GET /openapi.json` under `wrangler dev`: served without credentials, valid OpenAPI 3.1, and
// true: a walk calls every documented operation and checks that the status it gets is one the
// document lists for it and that a JSON answer matches the schema documented for that status.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation | unknown>>;
  components: { schemas: Record<string, object> };
}

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

describe("the OpenAPI document under wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-openapi-"));
  const control = () => `localhost:${port}`;
  let document: Document;
  const fixtures: Record<string, string> = {};

  beforeAll(async () => {
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
    const served = await signedCall(port, control(), "GET", "/openapi.json", { unsigned: true });
    expect(served.status).toBe(200);
    document = served.json<Document>();
    expect(
      (
        await signedCall(port, control(), "POST", "/v1/apps", {
          body: JSON.stringify({ name: "walk", origin: origin.url }),
        })
      ).status,
    ).toBe(201);
    const submit = async (path: string, headers: Record<string, string> = {}) =>
      (await signedCall(port, `walk.async.localhost:${port}`, "POST", path, { body: "{}", headers })).json<{
        id: string;
      }>().id;
    fixtures["waiting"] = await submit("/later", { "asyncgate-delay": "1h" });
    fixtures["failed"] = await submit("/no-retry/500");
    const key = await signedCall(port, control(), "POST", "/v1/apps/walk/keys", {
      body: JSON.stringify({ permissions: ["query"] }),
    });
    fixtures["accessKey"] = key.json<{ access_key: string }>().access_key;
    // The failed task has failed before the walk retries it.
    for (let i = 0; i < 100; i++) {
      const task = (await signedCall(port, control(), "GET", `/v1/task/${fixtures["failed"]}`)).json<{
        state: number;
      }>();
      if (task.state === 11) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it("is served without credentials and is valid OpenAPI 3.1", async () => {
    const result = await new Validator().validate(
      structuredClone(document) as unknown as Parameters<Validator["validate"]>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("every documented operation answers with a documented status and body", async () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    for (const [name, schema] of Object.entries(document.components.schemas))
      ajv.addSchema(schema, `#/components/schemas/${name}`);
    const urn = "urn:fss:cn-north-4:p1:function:default:walk:latest";
    const concrete = (template: string, method: string) =>
      template
        .replace("{name}", "walk")
        .replace("{accessKey}", fixtures["accessKey"]!)
        .replace("{id}", method === "post" ? fixtures["failed"]! : fixtures["waiting"]!)
        .replace("{project_id}", "p1")
        .replace("{function_urn}", urn)
        .replace("{queueId}", "walk")
        .replace("{path}", "walked");
    const bodies: Record<string, unknown> = {
      "post /v1/apps": { name: "walked", origin: origin.url },
      "patch /v1/apps/{name}": { timeout: 30 },
      "post /v1/apps/{name}/redrive": { state: 11, dry_run: true },
      "post /v1/apps/{name}/purge": { state: 0 },
      "post /v1/apps/{name}/keys": { permissions: ["submit"] },
      "post /{path}": { walk: true },
      "post /v2/{project_id}/fgs/functions/{function_urn}/invocations-async": { k: "v" },
    };
    // Deletions last (the task and the key, then the purge of waiting tasks, then the app), so
    // every other operation finds what it needs.
    const order = (path: string, method: string) =>
      path === "/v1/apps/{name}" && method === "delete"
        ? 3
        : path === "/v1/apps/{name}/purge"
          ? 2
          : method === "delete"
            ? 1
            : 0;
    const operations = Object.entries(document.paths)
      .flatMap(([path, item]) =>
        METHODS.filter((method) => method in item).map((method) => ({
          path,
          method,
          operation: item[method] as Operation,
        })),
      )
      .sort((a, b) => order(a.path, a.method) - order(b.path, b.method));
    expect(operations.length).toBe(23);

    const walked: string[] = [];
    for (const { path, method, operation } of operations) {
      const key = `${method} ${path}`;
      const frontDoor = path.startsWith("/v2/") || path.startsWith("/docqueue");
      const host = path === "/{path}" ? `walk.async.localhost:${port}` : control();
      const body =
        bodies[key] ?? (path.startsWith("/docqueue/") ? "<Request><State>Paused</State></Request>" : undefined);
      // Required query parameters get the walk's values (the one there is: the app).
      const required = (
        (operation as { parameters?: { name: string; in: string; required?: boolean }[] }).parameters ?? []
      ).filter((p) => p.in === "query" && p.required);
      const search = required.length ? `?${required.map((p) => `${p.name}=walk`).join("&")}` : "";
      const response = await signedCall(port, host, method.toUpperCase(), concrete(path, method) + search, {
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
        // The front doors have their own signing schemes (their own e2e tests sign with the vendors' SDKs).
        unsigned: frontDoor || path === "/openapi.json",
      });
      const documented = operation.responses[String(response.status)];
      expect({ operation: key, status: response.status, documented: Boolean(documented) }).toEqual({
        operation: key,
        status: response.status,
        documented: true,
      });
      const schema = documented?.content?.["application/json"]?.schema;
      if (schema && response.status !== 101) {
        const validate = ajv.compile(schema);
        const valid = validate(response.json());
        expect({ operation: key, status: response.status, errors: valid ? null : validate.errors }).toEqual({
          operation: key,
          status: response.status,
          errors: null,
        });
      }
      walked.push(`${key} → ${response.status}`);
    }
    // The native operations succeeded; the front doors refused the unsigned calls as documented.
    expect(walked.filter((line) => !/ → 2\d\d$/.test(line))).toEqual([
      "post /v2/{project_id}/fgs/functions/{function_urn}/invocations-async → 401",
      "get /docqueue → 403",
      "put /docqueue/{queueId} → 403",
    ]);
  });
});
