// Proves the Worker's whole surface holds under generated input (fast-check, seeded, bounded): over
// 10,000 requests across hosts, methods, paths, query strings, headers, bodies, control-API JSON and
// credentials, plus WebSocket frames, there is no 5xx, no unexpected error logged, every error is
// SPEC §8 JSON, and every task accepted before the fuzz is intact after it.
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { qiniuAuthorization, formatQiniuDate } from "../../src/auth/qiniu";
import { signUrl } from "../../src/auth/url-token";
import { routeHost } from "../../src/http/hosts";
import type { TaskRecord } from "../../src/shared/types";
import { CONTROL, call, createApp, getTask, submit, uniqueApp } from "./helpers";

/** `FUZZ_SEED=<n>` replays a failing run; the seed is printed whenever a property fails. */
const SEED = Number(env.FUZZ_SEED || 20261126);
const REQUESTS = 10_000;
const FRAME_RUNS = 300;

interface Keys {
  accessKey: string;
  secretKey: string;
}

const kept = uniqueApp("kept");
const target = uniqueApp("fuzz");
const keptIds: string[] = [];
const before = new Map<string, TaskRecord>();
let keptKeys: Keys;
let targetKeys: Keys;
const problems: string[] = [];
/** Answers by status: the fuzz must reach past authentication, not only collect 401s. */
const statuses = new Map<number, number>();
const errorLog = vi.spyOn(console, "error");

async function createKey(app: string, permissions: string[]): Promise<Keys> {
  const response = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions }) });
  const created = (await response.json()) as { access_key: string; secret_key: string };
  return { accessKey: created.access_key, secretKey: created.secret_key };
}

beforeAll(async () => {
  // Paused: its tasks stay waiting, so "intact" means byte-for-byte the same record.
  await createApp(kept, { state: "Paused" });
  await createApp(target, { retry: { max_attempts: 1 } });
  for (let i = 0; i < 20; i++) {
    keptIds.push(
      await submit(kept, `/kept/${i}?n=${i}`, { body: JSON.stringify({ i }), headers: { "x-kept": String(i) } }),
    );
  }
  for (const id of keptIds) before.set(id, await getTask(id));
  // The kept app's key may not manage: nothing the fuzz does with it may change a kept task.
  keptKeys = await createKey(kept, ["submit", "query", "subscribe"]);
  targetKeys = await createKey(target, ["submit", "query", "subscribe", "manage"]);
  errorLog.mockClear();
});

afterAll(() => {
  errorLog.mockRestore();
});

// ---- generators ----------------------------------------------------------------------------

/**
 * URLs for origins, callbacks and notify urls: loopback only (nothing here may leave the
 * machine, not even a DNS lookup), on ports where nothing listens, or not URLs at all.
 */
const loopbackUrlArb = fc
  .tuple(
    fc.constantFrom("http", "https", "ftp"),
    fc.constantFrom("127.0.0.1:9", "127.0.0.1:1", "[::1]:9"),
    fc.webPath(),
  )
  .map(([scheme, host, path]) => `${scheme}://${host}${path}`);

const nameArb = fc.oneof(
  fc.constant(target),
  fc.constant(kept),
  fc.constantFrom("a", "x-y", "Bad_Name", "-x", "a".repeat(64), "", "%2e%2e", "..", "ok1"),
  fc.stringMatching(/^[a-z0-9-]{1,70}$/),
);
const idArb = fc.oneof(
  fc.constantFrom(...["0".repeat(32), "f".repeat(32), "zz", "", "%00"]),
  fc.stringMatching(/^[0-9a-f]{32}$/),
  fc.constant("KEPT"), // replaced with a kept task id
  fc.string({ maxLength: 40 }),
);
const pathArb = fc.oneof(
  fc.constant("/v1/apps"),
  nameArb.map((name) => `/v1/apps/${name}`),
  nameArb.map((name) => `/v1/apps/${name}/keys`),
  fc
    .tuple(nameArb, fc.oneof(fc.constant("KEY"), fc.string({ maxLength: 30 })))
    .map(([name, key]) => `/v1/apps/${name}/keys/${encodeURIComponent(key)}`),
  fc.constant("/v1/tasks"),
  idArb.map((id) => `/v1/task/${encodeURIComponent(id)}`),
  idArb.map((id) => `/v1/task/${encodeURIComponent(id)}/retry`),
  fc.array(fc.webSegment(), { maxLength: 5 }).map((segments) => `/${segments.join("/")}`),
  fc.constantFrom("/", "//", "/v1", "/v1/", "/v1/apps/", "/v1/task", "/%ff", "/v1/apps/a/b/c/d"),
);
const queryValueArb = fc.oneof(
  nameArb,
  fc.constantFrom("0", "1", "10", "11", "-1", "100", "101", "1e3", "", "Active", "Paused", "KEPT"),
  fc.stringMatching(/^[0-9a-f]{32}$/),
  fc.string({ maxLength: 20 }),
);
const anyQueryArb = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        "app",
        "state",
        "limit",
        "cursor",
        "since",
        "ids",
        "page",
        "page_size",
        "e",
        "token",
        "x",
        "hello",
      ),
      queryValueArb,
    ),
    {
      maxLength: 5,
    },
  )
  .map((pairs) =>
    pairs.length ? `?${pairs.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&")}` : "",
  );
/** Mostly the queries the API reads, so requests get past validation. */
const queryArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant("") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      `?app=${target}`,
      `?app=${target}&limit=2`,
      `?app=${target}&state=10`,
      `?app=${kept}`,
      "?ids=a,b&state=Active",
      "?page=2&page_size=5",
    ),
  },
  { weight: 2, arbitrary: anyQueryArb },
);
const hostArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant("async.localhost") },
  { weight: 3, arbitrary: fc.constant(`${target}.async.localhost`) },
  { weight: 1, arbitrary: fc.constant(`${kept}.async.localhost`) },
  { weight: 1, arbitrary: nameArb.map((name) => `${name}.async.localhost`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "localhost",
      "127.0.0.1:8787",
      "a.b.async.localhost",
      ".async.localhost",
      "ASYNC.LOCALHOST:1",
    ),
  },
);
const methodArb = fc.oneof(
  { weight: 5, arbitrary: fc.constant("GET") },
  { weight: 3, arbitrary: fc.constant("POST") },
  { weight: 2, arbitrary: fc.constantFrom("PATCH", "DELETE") },
  { weight: 1, arbitrary: fc.constantFrom("PUT", "HEAD", "OPTIONS") },
);
const configArb = fc.record(
  {
    name: nameArb,
    origin: fc.oneof(
      fc.constant(env.TEST_ORIGIN),
      fc.constantFrom("ftp://x", "https://async.localhost", "https://x.async.localhost./", "not a url", ""),
      loopbackUrlArb,
    ),
    state: fc.constantFrom("Active", "Paused", "Sleeping", 1),
    timeout: fc.oneof(fc.double(), fc.integer(), fc.constant("60")),
    retry: fc.oneof(
      fc.record(
        {
          max_attempts: fc.integer({ min: -2, max: 2000 }),
          min_backoff: fc.double(),
          max_backoff: fc.double(),
          max_doublings: fc.integer(),
          max_retry_duration: fc.double(),
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
    ),
    notify: fc.oneof(
      fc.record(
        {
          url: fc.oneof(loopbackUrlArb, fc.constant(null)),
          state: fc.constantFrom("On", "Off", "x"),
          events: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
    ),
    max_body_bytes: fc.integer(),
    max_subscribers: fc.integer(),
    retention: fc.oneof(fc.integer(), fc.double()),
    task_headers: fc.constantFrom("asyncgate", "cloudtasks", "x"),
    permissions: fc.oneof(fc.subarray(["submit", "query", "subscribe", "manage"]), fc.jsonValue()),
    unknown: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const bodyArb = fc.oneof(
  fc.constant(undefined),
  configArb.map((config) => JSON.stringify(config)),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }),
);
const headerArb = fc.dictionary(
  fc.constantFrom(
    "content-type",
    "asyncgate-delay",
    "asyncgate-not-before",
    "asyncgate-deduplication-id",
    "asyncgate-retries",
    "asyncgate-timeout",
    "asyncgate-callback",
    "asyncgate-task-id",
    "x-qiniu-date",
    "x-qiniu-extra",
    "upgrade",
    "x-anything",
  ),
  fc.oneof(
    fc.constantFrom(
      "application/json",
      "application/octet-stream",
      "text/plain",
      "10s",
      "5m",
      "0",
      "999",
      "1000",
      "31d",
      "32d",
      "-1",
      "websocket",
      "",
    ),
    fc.constant("DATE"), // replaced with a fresh date
    loopbackUrlArb,
    fc.stringMatching(/^[\x20-\x7e]{0,40}$/),
  ),
  { maxKeys: 3 },
);
const signerArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant("admin") },
  { weight: 3, arbitrary: fc.constant("target") },
  { weight: 1, arbitrary: fc.constantFrom("kept", "none", "garbage", "forged", "url") },
);
const garbageArb = fc.oneof(
  fc.stringMatching(/^[\x20-\x7e]{0,60}$/),
  fc.constantFrom(
    "",
    "Qiniu",
    "Qiniu :",
    "Qiniu a:",
    "Qiniu :b",
    `Qiniu ${"k".repeat(10_000)}:x`,
    "Bearer x:y",
    "qiniu a:b",
  ),
  fc.stringMatching(/^[a-z0-9-]{1,10}\.[0-9a-f]{24}$/).map((key) => `Qiniu ${key}:c2lnbg==`),
);

// ---- one request ---------------------------------------------------------------------------

interface Generated {
  method: string;
  host: string;
  pathAndQuery: string;
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
  signer: string;
  /** The Authorization value when the signer is "garbage". */
  garbage: string;
}

async function sendOne({ method, host, pathAndQuery, headers: headerInit, body, signer, garbage }: Generated) {
  const keptId = keptIds[pathAndQuery.length % keptIds.length]!;
  pathAndQuery = pathAndQuery.replaceAll("KEPT", keptId).replaceAll("KEY", keptKeys.accessKey);
  const headers = new Headers();
  for (const [name, value] of Object.entries(headerInit))
    headers.set(name, value === "DATE" ? formatQiniuDate(Date.now()) : value);
  headers.set("host", host);
  const bytes =
    body === undefined ? new Uint8Array(0) : typeof body === "string" ? new TextEncoder().encode(body) : body;
  const sendsBody = method !== "GET" && method !== "HEAD" && body !== undefined;
  // The admin may do anything, including deleting the kept app: it never touches it here.
  const mentionsKept =
    `${host}${pathAndQuery}${new TextDecoder().decode(bytes)}${[...headers.values()].join()}`.includes(kept) ||
    pathAndQuery.includes(keptId);
  const who = signer === "admin" && mentionsKept ? "kept" : signer;
  const keys: Keys | null =
    who === "admin"
      ? { accessKey: env.ADMIN_ACCESS_KEY, secretKey: env.ADMIN_SECRET_KEY }
      : who === "target"
        ? targetKeys
        : who === "kept" || who === "url"
          ? keptKeys
          : who === "forged"
            ? { accessKey: targetKeys.accessKey, secretKey: "forged" }
            : null;
  let url = `http://${host}${pathAndQuery}`;
  if (who === "url" && keys) {
    url = await signUrl(url, Math.floor(Date.now() / 1000) + 60, keys.accessKey, keys.secretKey);
  } else if (keys) {
    const parsed = new URL(url);
    headers.set(
      "authorization",
      await qiniuAuthorization(keys.accessKey, keys.secretKey, {
        method,
        pathAndQuery: parsed.pathname + parsed.search,
        host,
        contentType: headers.get("content-type"),
        headers,
        body: sendsBody ? bytes : new Uint8Array(0),
      }),
    );
  } else if (who === "garbage") {
    headers.set("authorization", garbage);
  }
  let request: Request;
  try {
    request = new Request(url, { method, headers, body: sendsBody ? bytes : undefined });
  } catch {
    return; // not a request a client could send (the URL or a header is not valid HTTP)
  }
  const response = await exports.default.fetch(request);
  statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
  const isControl = routeHost(host, env.APP_HOST_SUFFIX).kind === "control";
  if (isControl && response.status === 200 && method === "DELETE" && new URL(url).pathname === `/v1/apps/${target}`) {
    // Deleting the app the fuzz works on is fair; bring it back so later requests reach it again.
    await createApp(target, { retry: { max_attempts: 1 } });
    targetKeys = await createKey(target, ["submit", "query", "subscribe", "manage"]);
  }
  if (response.status >= 500)
    problems.push(`${response.status} ${method} ${host}${pathAndQuery} as ${who}: ${await response.text()}`);
  if (response.status === 101) {
    response.webSocket?.accept();
    response.webSocket?.close(1000);
    return;
  }
  if (response.status >= 400 && method !== "HEAD") {
    const text = await response.text();
    try {
      const error = JSON.parse(text) as { error?: unknown; code?: unknown; req_id?: unknown };
      if (
        typeof error.code !== "string" ||
        typeof error.error !== "string" ||
        error.req_id !== response.headers.get("x-reqid")
      ) {
        problems.push(`not SPEC §8 JSON: ${response.status} ${method} ${host}${pathAndQuery}: ${text}`);
      }
    } catch {
      problems.push(`not JSON: ${response.status} ${method} ${host}${pathAndQuery}: ${text.slice(0, 200)}`);
    }
  } else {
    await response.body?.cancel();
  }
}

const unexpectedLogs = () =>
  errorLog.mock.calls
    .map((args) => args.map(String).join(" "))
    .filter((line) =>
      /"event":"(unexpected_error|alarm_failed|group_rolled_back|websocket_[a-z_]+)"|Uncaught/.test(line),
    );

describe("fuzz", () => {
  it(
    `${REQUESTS} generated requests: no 5xx, errors are SPEC §8 JSON, nothing unexpected logged (seed ${SEED})`,
    { timeout: 600_000 },
    async () => {
      await fc
        .assert(
          fc.asyncProperty(
            methodArb,
            hostArb,
            pathArb,
            queryArb,
            headerArb,
            bodyArb,
            signerArb,
            garbageArb,
            async (method, host, path, query, headers, body, signer, garbage) => {
              const count = problems.length;
              await sendOne({ method, host, pathAndQuery: path + query, headers, body, signer, garbage });
              return problems.length === count;
            },
          ),
          { seed: SEED, numRuns: REQUESTS, endOnFailure: true },
        )
        .catch((error: unknown) => {
          throw new Error(`${String(error)}\n${problems.join("\n")}\n${unexpectedLogs().join("\n")}`);
        });
      expect(problems).toEqual([]);
      expect(unexpectedLogs()).toEqual([]);
      console.log(
        `fuzz answers by status (seed ${SEED}):`,
        JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b))),
      );
      const count = (status: number) => statuses.get(status) ?? 0;
      expect(count(200) + count(201)).toBeGreaterThan(300);
      expect(count(202)).toBeGreaterThan(100);
      for (const status of [400, 401, 403, 404, 405]) expect(count(status)).toBeGreaterThan(20);
    },
  );

  it(
    `${FRAME_RUNS} generated WebSocket sessions: each closes cleanly, the app's object keeps serving`,
    { timeout: 300_000 },
    async () => {
      const frameArb = fc.oneof(
        fc.constantFrom("OK", "ok", " OK ", "", "PING", "{}", "ACK 1", "ACK"),
        fc.string({ maxLength: 50 }),
        fc.string({ minLength: 1000, maxLength: 1100 }),
        fc.uint8Array({ maxLength: 64 }),
      );
      // Its own app: the request fuzz may have deleted the target app, as the admin may.
      const feedApp = uniqueApp("feedfuzz");
      await createApp(feedApp);
      const feedKeys = await createKey(feedApp, ["subscribe"]);
      await fc
        .assert(
          fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 6 }), fc.boolean(), async (frames, byKey) => {
            const url = `${CONTROL}/v1/tasks?app=${feedApp}`;
            const keys = byKey ? feedKeys : { accessKey: env.ADMIN_ACCESS_KEY, secretKey: env.ADMIN_SECRET_KEY };
            const signed = await signUrl(url, Math.floor(Date.now() / 1000) + 60, keys.accessKey, keys.secretKey);
            const response = await exports.default.fetch(new Request(signed, { headers: { upgrade: "websocket" } }));
            if (response.status !== 101 || !response.webSocket) {
              problems.push(`upgrade answered ${response.status}: ${await response.text()}`);
              return false;
            }
            const ws = response.webSocket;
            const closed = new Promise<number>((resolve) =>
              ws.addEventListener("close", (event) => resolve(event.code)),
            );
            ws.accept();
            for (const frame of frames) ws.send(frame);
            ws.close(1000);
            const code = await closed;
            if (![1000, 1003, 1008, 1009].includes(code))
              problems.push(`close code ${code} after ${JSON.stringify(frames).slice(0, 100)}`);
            return [1000, 1003, 1008, 1009].includes(code);
          }),
          { seed: SEED, numRuns: FRAME_RUNS, endOnFailure: true },
        )
        .catch((error: unknown) => {
          throw new Error(`${String(error)}\n${problems.join("\n")}`);
        });
      const after = await call(`${CONTROL}/v1/tasks?app=${feedApp}&limit=1`);
      expect(after.status).toBe(200);
      expect(unexpectedLogs()).toEqual([]);
    },
  );

  it("every task accepted before the fuzz is intact after it", async () => {
    for (const id of keptIds) expect(await getTask(id)).toEqual(before.get(id));
    const app = (await (await call(`${CONTROL}/v1/apps/${kept}`)).json()) as {
      state: string;
      stats: { waiting: number };
    };
    expect(app.state).toBe("Paused");
    expect(app.stats.waiting).toBeGreaterThanOrEqual(keptIds.length);
  });
});
