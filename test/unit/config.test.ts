// Proves app config validation: defaults, partial updates, and clear 400s for bad values and origins.
import { describe, expect, it } from "vitest";
import { applyPatch, createConfig, defaultConfig } from "../../src/config/app-config";
import { GatewayError } from "../../src/http/errors";
import { parseDuration, parseSubmitOptions, qiniuCoverage } from "../../src/submit/options";

const gateway = { appHostSuffix: ".async.example.com", controlHosts: ["async.example.com", "gw.example.com:8443"] };
const local = { allowPrivateOrigins: true, gateway };
const deployed = { allowPrivateOrigins: false, gateway };

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof GatewayError) return `${error.status} ${error.code}`;
    throw error;
  }
  return "no error";
}

describe("createConfig", () => {
  it("fills in every default", () => {
    expect(createConfig({ name: "shop", origin: "https://api.example.com/" }, deployed)).toEqual(
      defaultConfig("shop", "https://api.example.com"),
    );
  });
  it.each([
    [{ origin: "https://a.example.com" }, "400 invalid_name"],
    [{ name: "Bad_Name", origin: "https://a.example.com" }, "400 invalid_name"],
    [{ name: "a" }, "400 invalid_origin"],
    [{ name: "a", origin: "ftp://a.example.com" }, "400 invalid_origin"],
    [{ name: "a", origin: "https://u:p@a.example.com" }, "400 invalid_origin"],
    [{ name: "a", origin: "https://a.example.com?x=1" }, "400 invalid_origin"],
    [{ name: "a", origin: "https://a.example.com", color: "red" }, "400 unknown_field"],
    [{ name: "a", origin: "https://a.example.com", timeout: 901 }, "400 invalid_timeout"],
    [{ name: "a", origin: "https://a.example.com", retry: { max_attempts: 0 } }, "400 invalid_max_attempts"],
    [{ name: "a", origin: "https://a.example.com", retry: { min_backoff: 10, max_backoff: 5 } }, "400 invalid_retry"],
    [{ name: "a", origin: "https://a.example.com", notify: { state: "On" } }, "400 invalid_notify"],
    ["not an object", "400 invalid_body"],
  ])("rejects %j", (input, expected) => {
    expect(codeOf(() => createConfig(input, deployed))).toBe(expected);
  });
  it.each(["http://127.0.0.1:8080", "http://localhost:3000", "http://[::1]/", "http://backend.internal"])(
    "refuses private origin %s when deployed, accepts it locally",
    (origin) => {
      expect(codeOf(() => createConfig({ name: "a", origin }, deployed))).toBe("400 invalid_origin");
      expect(createConfig({ name: "a", origin }, local).origin).toBe(new URL(origin).toString().replace(/\/$/, ""));
    },
  );
});

describe("origins, callbacks and notify urls", () => {
  it.each([
    "http://localhost.:3000",
    "http://x.internal./",
    "http://LOCALHOST../",
    "http://10.0.0.1./",
    "http://printer.lan.",
  ])("refuses the trailing-dot form of private name %s when deployed", (origin) => {
    expect(codeOf(() => createConfig({ name: "a", origin }, deployed))).toBe("400 invalid_origin");
    expect(
      codeOf(() => applyPatch(defaultConfig("a", "https://a.example.com"), { notify: { url: origin } }, deployed)),
    ).toBe("400 invalid_url");
  });
  it.each([
    "https://shop.async.example.com",
    "https://shop.async.example.com.:443/x",
    "https://async.example.com",
    "http://ASYNC.example.com./",
    "https://gw.example.com:8443/hook",
  ])("refuses the gateway's own host %s, deployed and locally", (url) => {
    for (const rules of [deployed, local]) {
      expect(codeOf(() => createConfig({ name: "a", origin: url }, rules))).toBe("400 invalid_origin");
      expect(codeOf(() => parseSubmitOptions(new Headers({ "asyncgate-callback": url }), 0, rules))).toBe(
        "400 invalid_callback",
      );
    }
  });
  it("accepts the control host's name on another port, and other hosts of the domain", () => {
    expect(createConfig({ name: "a", origin: "https://gw.example.com" }, deployed).origin).toBe(
      "https://gw.example.com",
    );
    expect(createConfig({ name: "a", origin: "https://api.example.com" }, deployed).origin).toBe(
      "https://api.example.com",
    );
  });
  it("refuses URLs over 2 KiB for origins, callbacks and notify urls", () => {
    const long = `https://api.example.com/${"a".repeat(2048)}`;
    expect(codeOf(() => createConfig({ name: "a", origin: long }, deployed))).toBe("400 invalid_origin");
    expect(codeOf(() => parseSubmitOptions(new Headers({ "asyncgate-callback": long }), 0, deployed))).toBe(
      "400 invalid_callback",
    );
    expect(
      codeOf(() => applyPatch(defaultConfig("a", "https://a.example.com"), { notify: { url: long } }, deployed)),
    ).toBe("400 invalid_url");
    const fits = `https://api.example.com/${"a".repeat(2000)}`;
    expect(parseSubmitOptions(new Headers({ "asyncgate-callback": fits }), 0, deployed).callback).toBe(fits);
  });
});

describe("applyPatch", () => {
  const base = defaultConfig("a", "https://a.example.com");
  it("merges nested fields and keeps the rest", () => {
    const next = applyPatch(base, { state: "Paused", retry: { max_attempts: 2 } }, deployed);
    expect(next.state).toBe("Paused");
    expect(next.retry).toEqual({ ...base.retry, max_attempts: 2 });
    expect(base.state).toBe("Active");
  });
  it("refuses a rename", () => {
    expect(codeOf(() => applyPatch(base, { name: "b" }, deployed))).toBe("400 invalid_name");
  });
});

describe("submit options", () => {
  const now = 1_800_000_000_000;
  const parse = (headers: Record<string, string>) => parseSubmitOptions(new Headers(headers), now, deployed);
  it.each([
    ["30", 30],
    ["10s", 10],
    ["5m", 300],
    ["2h", 7200],
    ["1.5s", 1.5],
    ["soon", null],
    ["-1", null],
  ])("parseDuration(%s)", (text, expected) => expect(parseDuration(text)).toBe(expected));
  it("reads the control headers", () => {
    const options = parse({
      "asyncgate-delay": "5m",
      "asyncgate-deduplication-id": "order-1",
      "asyncgate-retries": "2",
      "asyncgate-timeout": "30s",
      "asyncgate-callback": "https://hooks.example.com/cb?x=1",
      "asyncgate-fail-fast": "TRUE",
    });
    expect(options).toEqual({
      notBeforeMs: now + 300_000,
      deduplicationId: "order-1",
      maxAttempts: 3,
      timeout: 30,
      callback: "https://hooks.example.com/cb?x=1",
      failFast: true,
    });
    expect(parse({}).failFast).toBe(false);
    expect(parse({ "asyncgate-not-before": String(now / 1000 + 60) }).notBeforeMs).toBe(now + 60_000);
    expect(parse({}).notBeforeMs).toBe(now);
  });
  it.each([
    [{ "asyncgate-fail-fast": "yes" }, "400 invalid_header"],
    [{ "asyncgate-delay": "soon" }, "400 invalid_header"],
    [{ "asyncgate-delay": "1s", "asyncgate-not-before": "1" }, "400 invalid_header"],
    [{ "asyncgate-not-before": "tomorrow" }, "400 invalid_header"],
    [{ "asyncgate-retries": "-1" }, "400 invalid_header"],
    [{ "asyncgate-timeout": "16m" }, "400 invalid_header"],
    [{ "asyncgate-callback": "not a url" }, "400 invalid_callback"],
    [{ "asyncgate-deduplication-id": "x".repeat(257) }, "400 invalid_header"],
  ])("400 for %j", (headers, expected) => {
    expect(codeOf(() => parse(headers))).toBe(expected);
  });
  it("reads each control header in its signed Qiniu form (X-Qiniu-Asyncgate-…) too, but not both forms at once", () => {
    const signed = parse({
      "x-qiniu-asyncgate-delay": "5m",
      "x-qiniu-asyncgate-callback": "https://hooks.example.com/cb",
      "x-qiniu-asyncgate-retries": "0",
    });
    expect(signed).toMatchObject({
      notBeforeMs: now + 300_000,
      callback: "https://hooks.example.com/cb",
      maxAttempts: 1,
    });
    expect(codeOf(() => parse({ "asyncgate-delay": "5m", "x-qiniu-asyncgate-delay": "5m" }))).toBe(
      "400 invalid_header",
    );
  });

  it("with signed control headers required, refuses one the signature does not cover, naming its signed form", () => {
    const strict = (headers: Record<string, string>, coverage = qiniuCoverage(true)) =>
      parseSubmitOptions(new Headers(headers), now, deployed, coverage);
    expect(strict({ "x-qiniu-asyncgate-callback": "https://hooks.example.com/cb" }).callback).toBe(
      "https://hooks.example.com/cb",
    );
    expect(codeOf(() => strict({ "asyncgate-callback": "https://hooks.example.com/cb" }))).toBe(
      "400 unsigned_control_header",
    );
    // A door whose signature lists what it covers (Huawei's SignedHeaders).
    const listed = { covered: (name: string) => ["host", "asyncgate-delay"].includes(name), required: true };
    expect(strict({ "asyncgate-delay": "10s" }, listed).notBeforeMs).toBe(now + 10_000);
    expect(codeOf(() => strict({ "asyncgate-retries": "1" }, listed))).toBe("400 unsigned_control_header");
    expect(codeOf(() => strict({ "x-qiniu-asyncgate-retries": "1" }, listed))).toBe("400 unsigned_control_header");
    // Not required: unsigned ones are read as before.
    expect(parse({ "asyncgate-retries": "1" }).maxAttempts).toBe(2);
  });
});
