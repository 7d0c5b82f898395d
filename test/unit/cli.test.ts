// The CLI's newcomer surface, driving main() in-process with no gateway: --version, --help on
// every command and group (usage, summary, every flag described, an example), exit codes (3 for
// a waited-for task that failed), one line for an unreachable gateway whatever the transport,
// watch's connected line and its refusal without a WebSocket, and --body text|json|base64.
// A scripted fetch (and a fake WebSocket) stand in for the gateway where one must answer.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { COMMANDS, main } from "../../src/cli/index";
import type { TaskRecord } from "../../src/client/index";

const VERSION = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;
const KEYS = { ASYNCGATE_ACCESS_KEY: "ak", ASYNCGATE_SECRET_KEY: "sk" };
/** Nothing listens on port 9 (discard): every connection is refused. */
const CLOSED = { ...KEYS, ASYNCGATE_ENDPOINT: "http://async.localhost:9", ASYNCGATE_CONNECT_TO: "http://127.0.0.1:9" };
/** A plain endpoint: the client goes through (a stubbed) fetch, no connectTo. */
const FETCHED = { ...KEYS, ASYNCGATE_ENDPOINT: "http://127.0.0.1:9" };

async function run(argv: string[], env: Record<string, string | undefined> = {}, signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    env,
    (line) => out.push(line),
    (line) => err.push(line),
    signal,
  );
  return { code, out: out.join("\n"), err: err.join("\n"), errLines: err.join("\n").split("\n").filter(Boolean) };
}

const b64 = (bytes: string | Uint8Array) => Buffer.from(bytes).toString("base64");
const jsonResponse = (value: unknown, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });

function record(state: number, responseBody: string | Uint8Array = "status 500"): TaskRecord {
  return {
    id: "01aa0000000000000000000000000001",
    req_id: "r1",
    app: "demo",
    request: { method: "POST", path: "/x", raw_query: "", header: {}, body: b64('{"a":1}') },
    created_at: 1,
    state,
    ...(state >= 10
      ? { response: { status_code: state === 10 ? 200 : 500, header: {}, body: b64(responseBody) } }
      : {}),
    attempts: 1,
    error: state === 11 ? "origin answered 500" : null,
  } as TaskRecord;
}

/** Stubs fetch with a script of answers; answers the requests it saw. */
function scriptFetch(answer: (url: URL, index: number) => Response | Promise<Response>): URL[] {
  const seen: URL[] = [];
  vi.stubGlobal("fetch", async (input: RequestInfo | URL) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    seen.push(url);
    return answer(url, seen.length - 1);
  });
  return seen;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("asyncgate --version", () => {
  it.each([["--version"], ["-v"]])("%s prints package.json's version and exits 0", async (flag) => {
    const { code, out, err } = await run([flag]);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(out).toBe(VERSION);
    expect(err).toBe("");
    expect(code).toBe(0);
  });
});

describe("asyncgate help", () => {
  const names = Object.keys(COMMANDS);

  it.each(names.flatMap((name) => [[name, "--help"] as const, [name, "-h"] as const]))(
    "%s %s: usage, summary, every flag with its description, an example; exit 0 without keys",
    async (name, flag) => {
      const command = COMMANDS[name]!;
      const { code, out, err } = await run([...name.split(" "), flag]);
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(out).toMatch(/^usage: asyncgate /);
      expect(out).toContain(`${name}: ${command.summary}`);
      for (const [flagName, option] of Object.entries(command.options ?? {})) {
        expect(option.description.length).toBeGreaterThan(10);
        const row = out.split("\n").find((line) => new RegExp(`^  (-\\w, )?--${flagName}\\b`).test(line));
        expect(row, `--${flagName} has a row`).toBeDefined();
        expect(row).toContain(option.description);
      }
      const examples = out.slice(out.indexOf("\nexamples:\n")).split("\n").slice(2);
      expect(out).toContain("\nexamples:\n");
      expect(examples[0]).toMatch(new RegExp(`^  asyncgate ${name}( |$)`));
    },
  );

  it.each([
    ["apps", "--help"],
    ["tasks", "--help"],
    ["keys", "--help"],
    ["apps", "-h"],
    ["tasks", "-h"],
    ["keys", "-h"],
  ])("asyncgate %s %s lists its commands with their summaries; exit 0", async (group, flag) => {
    const { code, out, err } = await run([group, flag]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(new RegExp(`^usage: asyncgate ${group} <command>`));
    const members = names.filter((name) => name.startsWith(`${group} `));
    expect(members.length).toBeGreaterThan(2);
    for (const name of members) {
      const sub = name.slice(group.length + 1);
      expect(out).toMatch(new RegExp(`\\n  ${sub} +${COMMANDS[name]!.summary.replace(/[()]/g, "\\$&")}`));
    }
    expect(out).toMatch(new RegExp(`\\nexamples:\\n  asyncgate ${group} `));
  });

  it("no arguments: the global help on stderr, exit 2; --help, -h and help: on stdout, exit 0", async () => {
    const bare = await run([]);
    expect(bare.code).toBe(2);
    expect(bare.out).toBe("");
    expect(bare.err).toMatch(/^usage: asyncgate <command>/);
    for (const argv of [["--help"], ["-h"], ["help"]]) {
      const { code, out, err } = await run(argv);
      expect(code).toBe(0);
      expect(err).toBe("");
      expect(out).toBe(bare.err);
    }
    expect(bare.err).toContain("-v, --version");
    for (const exit of [
      "0 ok",
      "1 the gateway refused or failed",
      "2 a usage error",
      "3 the task failed",
      "130 interrupted",
    ])
      expect(bare.err).toContain(exit);
  });

  it("help <command> and help <group> print theirs; a group without a command is a usage error", async () => {
    expect((await run(["help", "tasks", "wait"])).out).toBe((await run(["tasks", "wait", "--help"])).out);
    expect((await run(["help", "keys"])).out).toBe((await run(["keys", "--help"])).out);
    expect((await run(["help", "nonsense"])).code).toBe(2);
    const bareGroup = await run(["apps"]);
    expect(bareGroup.code).toBe(2);
    expect(bareGroup.err).toContain("apps takes one of: create, list");
  });
});

describe("an unreachable gateway", () => {
  const line = (command: string, endpoint: string) =>
    `asyncgate ${command}: cannot reach the gateway at ${endpoint} (is \`npm start\` running?)`;

  it.each([
    ["apps", "list"],
    ["tasks", "get", "01aa0000000000000000000000000001"],
    ["tasks", "wait", "01aa0000000000000000000000000001"],
    ["submit", "demo", "/x", "--data", "{}", "--wait"],
    ["keys", "list", "demo"],
  ])("refused over node:http (connectTo): %s %s — one line, exit 1", async (...argv) => {
    const name = argv[0] === "submit" ? "submit" : `${argv[0]} ${argv[1]}`;
    const { code, out, errLines } = await run(argv, CLOSED);
    expect(errLines).toEqual([line(name, CLOSED.ASYNCGATE_ENDPOINT)]);
    expect(out).toBe("");
    expect(code).toBe(1);
  });

  it("refused through fetch (fetch failed), and an unknown host (ENOTFOUND): the same one line", async () => {
    const refused = await run(["apps", "get", "demo"], FETCHED);
    expect(refused.errLines).toEqual([line("apps get", FETCHED.ASYNCGATE_ENDPOINT)]);
    expect(refused.code).toBe(1);

    const lookup = Object.assign(new Error("getaddrinfo ENOTFOUND nosuch.invalid"), { code: "ENOTFOUND" });
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("fetch failed", { cause: lookup });
    });
    const unknownHost = { ...KEYS, ASYNCGATE_ENDPOINT: "https://nosuch.invalid" };
    const notFound = await run(["tasks", "get", "01aa0000000000000000000000000001"], unknownHost);
    expect(notFound.errLines).toEqual([line("tasks get", "https://nosuch.invalid")]);
    expect(notFound.code).toBe(1);
  });

  it("watch at a closed port: the one line and exit 1 at once, no retrying", async () => {
    const started = Date.now();
    const { code, out, errLines } = await run(["watch", "demo"], CLOSED);
    expect(errLines).toEqual([line("watch", CLOSED.ASYNCGATE_ENDPOINT)]);
    expect(out).toBe("");
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("watch whose WebSocket cannot connect (the HTTP check answered): the one line, exit 1", async () => {
    scriptFetch(() => jsonResponse({ tasks: [], cursor: null }));
    vi.stubGlobal("WebSocket", socketThat("error"));
    const { code, errLines } = await run(["watch", "demo"], FETCHED);
    expect(errLines).toEqual([line("watch", FETCHED.ASYNCGATE_ENDPOINT)]);
    expect(code).toBe(1);
  });

  it("an answer from the gateway is no connection error: its status and code, exit 1", async () => {
    scriptFetch(() => jsonResponse({ error: "no app demo", code: "app_not_found" }, 404));
    const { code, errLines } = await run(["apps", "get", "demo"], FETCHED);
    expect(errLines).toEqual(["asyncgate apps get: 404 app_not_found: no app demo"]);
    expect(code).toBe(1);
  });
});

/** A WebSocket stand-in that opens (and then stays open) or fails to connect. */
function socketThat(outcome: "open" | "error") {
  return class extends EventTarget {
    readyState = 0;
    constructor(readonly url: string) {
      super();
      setTimeout(() => {
        if (outcome === "open") {
          this.readyState = 1;
          this.dispatchEvent(new Event("open"));
          return;
        }
        this.dispatchEvent(new Event("error"));
        this.close(1006);
      }, 5);
    }
    send() {}
    close(code = 1000, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.dispatchEvent(Object.assign(new Event("close"), { code, reason }));
    }
  };
}

describe("watch", () => {
  it("without a global WebSocket (Node < 22) says so in one line and exits 1 instead of retrying", async () => {
    const seen = scriptFetch(() => jsonResponse({ tasks: [], cursor: null }));
    vi.stubGlobal("WebSocket", undefined);
    expect(globalThis.WebSocket).toBeUndefined();
    const { code, errLines } = await run(["watch", "demo"], FETCHED);
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatch(/^asyncgate watch: .*no built-in WebSocket.*Node 22/);
    expect(code).toBe(1);
    expect(seen).toEqual([]);
  });

  it("says on stderr when it is connected; Ctrl-C ends it with 130", async () => {
    scriptFetch(() => jsonResponse({ tasks: [], cursor: null }));
    vi.stubGlobal("WebSocket", socketThat("open"));
    const stop = new AbortController();
    const errors: string[] = [];
    const done = main(
      ["watch", "demo"],
      FETCHED,
      () => {},
      (text) => errors.push(text),
      stop.signal,
    );
    await vi.waitFor(() => expect(errors).toEqual(["watching demo (connected; Ctrl-C to stop)"]));
    stop.abort();
    expect(await done).toBe(130);
    expect(errors).toHaveLength(1);
  });
});

describe("waiting: exit 3 when the task failed", () => {
  it.each([
    [11, 3],
    [10, 0],
  ])("tasks wait on a task that ends in state %i exits %i, its record printed", async (state, expected) => {
    const seen = scriptFetch((_url, index) => jsonResponse(record(index === 0 ? 1 : state)));
    const { code, out, err } = await run(["tasks", "wait", "01aa0000000000000000000000000001"], FETCHED);
    expect(err).toBe("");
    expect(seen.length).toBe(2);
    expect(JSON.parse(out)).toMatchObject({ state });
    expect(code).toBe(expected);
  });

  it("a gateway lost after it answered is retried until the timeout, said once; --timeout without --wait is refused", async () => {
    const seen = scriptFetch((_url, index) => {
      if (index === 1 || index === 2) throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
      return jsonResponse(record(index === 0 ? 1 : 10));
    });
    const { code, out, errLines } = await run(["tasks", "wait", "01aa0000000000000000000000000001"], FETCHED);
    expect(seen.length).toBe(4);
    expect(errLines).toEqual([
      "asyncgate tasks wait: lost the gateway at http://127.0.0.1:9; retrying until the --timeout",
    ]);
    expect(JSON.parse(out)).toMatchObject({ state: 10 });
    expect(code).toBe(0);
    const early = await run(["submit", "demo", "/x", "--timeout", "5s"], FETCHED);
    expect(early.code).toBe(2);
    expect(early.err).toContain("--timeout and --body go with --wait");
    expect(seen.length).toBe(4);
  });

  it("submit --wait exits 3 when the task failed", async () => {
    scriptFetch((url) =>
      url.pathname === "/x" ? jsonResponse({ id: "01aa0000000000000000000000000001" }, 202) : jsonResponse(record(11)),
    );
    // App hosts are <app>.<endpoint host>: a name, not an IP address, here.
    const { code, out, err } = await run(["submit", "demo", "/x", "--data", "{}", "--wait"], {
      ...KEYS,
      ASYNCGATE_ENDPOINT: "http://gateway.test",
    });
    expect(err).toBe("");
    expect(JSON.parse(out)).toMatchObject({ state: 11 });
    expect(code).toBe(3);
  });
});

describe("--body text|json|base64", () => {
  const get = async (...flags: string[]) => {
    const task = record(11);
    scriptFetch(() => jsonResponse(task));
    const result = await run(["tasks", "get", task.id, ...flags], FETCHED);
    return { ...result, task };
  };

  it("base64 prints the record exactly as the API answers it", async () => {
    const { out, code, task } = await get("--body", "base64");
    expect(code).toBe(0);
    expect(out).toBe(JSON.stringify(task));
  });

  it("text (the default) adds body_text beside each UTF-8 body; body stays base64", async () => {
    for (const flags of [[], ["--body", "text"]]) {
      const { out, code, task } = await get(...flags);
      expect(code).toBe(0);
      const printed = JSON.parse(out) as Record<string, Record<string, unknown>>;
      expect(printed["request"]).toEqual({ ...task.request, body_text: '{"a":1}' });
      expect(printed["response"]).toEqual({ ...task.response, body_text: "status 500" });
    }
  });

  it("json adds body_json for a JSON body, body_text for other text", async () => {
    const { out, task } = await get("--body", "json");
    const printed = JSON.parse(out) as Record<string, Record<string, unknown>>;
    expect(printed["request"]).toEqual({ ...task.request, body_json: { a: 1 } });
    expect(printed["response"]).toEqual({ ...task.response, body_text: "status 500" });
  });

  it("bytes that are not UTF-8 stay base64 only", async () => {
    const task = record(10, new Uint8Array([0, 1, 2, 255]));
    scriptFetch(() => jsonResponse(task));
    const printed = JSON.parse((await run(["tasks", "get", task.id], FETCHED)).out) as Record<string, unknown>;
    expect(printed["response"]).toEqual(task.response);
  });

  it("any other value is a usage error before anything is sent", async () => {
    const seen = scriptFetch(() => jsonResponse(record(10)));
    for (const argv of [
      ["tasks", "get", "01aa0000000000000000000000000001", "--body", "hex"],
      ["tasks", "wait", "01aa0000000000000000000000000001", "--body", "hex"],
      ["submit", "demo", "/x", "--wait", "--body", "hex"],
    ]) {
      const { code, err } = await run(argv, FETCHED);
      expect(code).toBe(2);
      expect(err).toContain("--body must be text, json or base64");
    }
    expect(seen).toEqual([]);
  });
});

describe("operations: stats, redrive, purge, meters", () => {
  afterEach(() => vi.unstubAllGlobals());

  /** Stubs fetch, answering `answer`; answers what each request sent (method, path and query, JSON body). */
  function recordFetch(answer: unknown): { method: string; path: string; body: unknown }[] {
    const sent: { method: string; path: string; body: unknown }[] = [];
    vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      const text = await request.text();
      sent.push({ method: request.method, path: url.pathname + url.search, body: text ? JSON.parse(text) : null });
      return jsonResponse(answer);
    });
    return sent;
  }

  it("each sends the request the API takes and prints the answer", async () => {
    const sent = recordFetch({ ok: true });
    const commands = [
      ["apps", "stats", "shop"],
      ["apps", "redrive", "shop", "--status", "503", "--since", "1796000000", "--dry-run"],
      ["apps", "redrive", "shop"],
      ["apps", "purge", "shop"],
      ["meters", "--apps", "shop,demo"],
    ];
    for (const argv of commands) {
      const { code, out } = await run(argv, FETCHED);
      expect({ argv, code, out }).toEqual({ argv, code: 0, out: '{"ok":true}' });
    }
    expect(sent).toEqual([
      { method: "GET", path: "/v1/apps/shop/stats", body: null },
      {
        method: "POST",
        path: "/v1/apps/shop/redrive",
        body: { state: 11, since: 1796000000, status_code: 503, dry_run: true },
      },
      { method: "POST", path: "/v1/apps/shop/redrive", body: { state: 11 } },
      { method: "POST", path: "/v1/apps/shop/purge", body: { state: 0 } },
      { method: "GET", path: "/v1/meters?apps=shop,demo", body: null },
    ]);
  });

  it("a status that is no HTTP status is a usage error before anything is sent", async () => {
    const sent = recordFetch({});
    const { code } = await run(["apps", "redrive", "shop", "--status", "abc"], FETCHED);
    expect(code).toBe(2);
    expect(sent).toEqual([]);
  });
});
