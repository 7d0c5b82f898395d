// The OpenAPI document: valid OpenAPI 3.1 (by @seriousme/openapi-schema-validator), and in
// agreement with the code it describes: the app config schema against the config validation
// (defaults equal, every field known to both, bounds and enums enforced alike), and every error
// code the sources can answer listed.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { applyPatch, createConfig, defaultConfig } from "../../src/config/app-config";
import type { ConfigRules } from "../../src/config/rules";
import { ERROR_CODES, FIELD_ERROR_CODE, OPENAPI } from "../../src/control/openapi";
import { GatewayError } from "../../src/http/errors";

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  default?: unknown;
  oneOf?: Schema[];
  additionalProperties?: unknown;
};

const rules: ConfigRules = {
  allowPrivateOrigins: false,
  gateway: { appHostSuffix: ".async.example.com", controlHosts: ["async.example.com"] },
};
const base = () => createConfig({ name: "app", origin: "https://backend.example.com" }, rules);
const schemas = OPENAPI.components.schemas as unknown as Record<string, Schema>;
const configSchema = schemas["AppConfigInput"]!;

/** The status and code a patch is refused with, or "accepted". */
function outcome(patch: Record<string, unknown>): string {
  try {
    applyPatch(base(), patch, rules);
    return "accepted";
  } catch (error) {
    if (error instanceof GatewayError) return `${error.status} ${error.code}`;
    throw error;
  }
}

/** Leaf fields of the config schema with their path and schema (nullable ones unwrapped). */
function leaves(schema: Schema, path: string[] = []): { path: string[]; schema: Schema; nullable: boolean }[] {
  return Object.entries(schema.properties ?? {}).flatMap(([key, child]) => {
    if (child.properties) return leaves(child, [...path, key]);
    const inner = child.oneOf?.find((option) => option.type !== "null");
    return [
      { path: [...path, key], schema: inner ? { ...inner, default: child.default } : child, nullable: Boolean(inner) },
    ];
  });
}

const nested = (path: string[], value: unknown): Record<string, unknown> =>
  path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
const valueAt = (object: unknown, path: string[]) =>
  path.reduce<unknown>((inner, key) => (inner as Record<string, unknown>)[key], object);

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    const result = await new Validator().validate(
      structuredClone(OPENAPI) as unknown as Parameters<Validator["validate"]>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(OPENAPI.openapi).toBe("3.1.0");
  });

  it("describes every field the config has, with the config's own defaults", () => {
    const defaults = defaultConfig("app", "https://backend.example.com");
    const fields = leaves(configSchema).filter((leaf) => leaf.path[0] !== "name" && leaf.path[0] !== "origin");
    const documented = fields.map((leaf) => leaf.path.join("."));
    const actual = leaves({
      properties: Object.fromEntries(Object.entries(defaults).map(([key, value]) => [key, toSchema(value)])),
    })
      .map((leaf) => leaf.path.join("."))
      .filter((path) => path !== "name" && path !== "origin");
    expect(documented.sort()).toEqual(actual.sort());
    for (const leaf of fields)
      expect({ field: leaf.path.join("."), default: leaf.schema.default }).toEqual({
        field: leaf.path.join("."),
        default: valueAt(defaults, leaf.path),
      });
  });

  it("bounds and enums are the validation's: the edges accepted, one step beyond refused", () => {
    // Fields whose edges are also bound by another field get it set so the edge itself is valid.
    const companions: Record<string, Record<string, unknown>> = {
      "retry.min_backoff": { retry: { max_backoff: 86_400, max_attempts: 2 }, retention: 31 * 86_400 },
      "retry.max_backoff": { retry: { min_backoff: 0, max_attempts: 2 }, retention: 31 * 86_400 },
      "retry.max_attempts": { retry: { max_backoff: 1, max_retry_duration: 60 }, retention: 31 * 86_400 },
      "retry.max_retry_duration": { retention: 31 * 86_400 },
      retention: { retry: { max_attempts: 1 } },
      "notify.state": { notify: { url: "https://hooks.example.com/x" } },
    };
    const merge = (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> => {
      const out: Record<string, unknown> = { ...a };
      for (const [key, value] of Object.entries(b)) {
        out[key] =
          typeof value === "object" && value !== null && !Array.isArray(value) && typeof out[key] === "object"
            ? merge(out[key] as Record<string, unknown>, value as Record<string, unknown>)
            : value;
      }
      return out;
    };
    let checked = 0;
    for (const leaf of leaves(configSchema)) {
      const field = leaf.path.join(".");
      if (field === "name" || field === "origin") continue;
      const patch = (value: unknown) => merge(companions[field] ?? {}, nested(leaf.path, value));
      const { minimum, maximum, type } = leaf.schema;
      if (minimum !== undefined && maximum !== undefined) {
        const step = type === "integer" ? 1 : 0.0001;
        const lowest = field === "retry.max_attempts" ? 1 : minimum; // -1 (unlimited) is the one value below 1
        expect({ field, at: lowest, outcome: outcome(patch(lowest)) }).toEqual({
          field,
          at: lowest,
          outcome: "accepted",
        });
        // A retry duration of the longest retention passes its own check, then meets the
        // cross-field rule (a task could still retry when its retention ends).
        const atMaximum = field === "retry.max_retry_duration" ? "400 retention_too_short" : "accepted";
        expect({ field, at: maximum, outcome: outcome(patch(maximum)) }).toEqual({
          field,
          at: maximum,
          outcome: atMaximum,
        });
        expect({ field, beyond: maximum + step, outcome: outcome(patch(maximum + step)) }).toMatchObject({
          field,
          outcome: expect.stringMatching(/^400 /),
        });
        expect({ field, below: minimum - step, outcome: outcome(patch(minimum - step)) }).toMatchObject({
          field,
          outcome: expect.stringMatching(/^400 /),
        });
        checked++;
      }
      if (leaf.schema.enum) {
        for (const value of leaf.schema.enum)
          expect({ field, value, outcome: outcome(patch(value)) }).toEqual({ field, value, outcome: "accepted" });
        if (type !== "array") expect(outcome(patch("NotAnEnumValue"))).toMatch(/^400 /);
        checked++;
      }
      if (leaf.nullable) expect({ field, outcome: outcome(patch(null)) }).toEqual({ field, outcome: "accepted" });
    }
    expect(checked).toBeGreaterThanOrEqual(14);
    expect(outcome({ colour: "red" })).toBe("400 unknown_field");
    expect(configSchema.additionalProperties).toBe(false);
  });

  it("the configs the validation makes satisfy the App schema", () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    for (const [key, schema] of Object.entries(schemas)) ajv.addSchema(schema, `#/components/schemas/${key}`);
    const validate = ajv.compile({ $ref: "#/components/schemas/App" });
    const full = applyPatch(
      base(),
      {
        notify: { url: "https://hooks.example.com/x", state: "On" },
        rate_limits: { max_dispatches_per_second: 2, max_burst_size: 4, max_concurrent_dispatches: 3 },
        task_headers: "appengine",
        invoke_path: "/fg?x=1",
      },
      rules,
    );
    for (const config of [base(), full]) {
      expect(validate({ ...config, host: "app.async.example.com" }), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it("lists every error code the sources answer with", () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
      );
    const codes = new Set<string>();
    const patterns = [
      /(?:badRequest|notFound)\(\s*"([a-z_]+)"/g,
      /(?:fail|GatewayError)\(\s*\d{3},\s*"([a-z_]+)"/g,
      /unauthorized\([^;]*?,\s*"([a-z_]+)"\)/g,
      /errorBody\(\{\s*code:\s*"([a-z_]+)"/g,
      /error\(\d{3},\s*"([a-z_]+)"/g,
    ];
    for (const file of files("src")) {
      const text = readFileSync(file, "utf8");
      for (const pattern of patterns) for (const match of text.matchAll(pattern)) codes.add(match[1]!);
    }
    expect(codes.size).toBeGreaterThan(30);
    const fieldCode = new RegExp(FIELD_ERROR_CODE);
    const missing = [...codes].filter(
      (code) => !(ERROR_CODES as readonly string[]).includes(code) && !fieldCode.test(code),
    );
    expect(missing).toEqual([]);
  });
});

/** A value as a schema-like tree, to list the leaf fields of a config. */
function toSchema(value: unknown): Schema {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return { properties: Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toSchema(inner)])) };
  }
  return {};
}
