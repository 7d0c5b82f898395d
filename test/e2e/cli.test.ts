// The built CLI (dist/cli.js, as `npx asyncgate` runs it) against `wrangler dev` and a real origin:
// every command's happy path and one error path, --help and --version without keys, unknown flags
// refused by name, JSON (lines) on stdout, exit 3 for a waited-for task that failed, --body, and
// an unreachable gateway said in one line on stderr at once.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { E2E_KEYS, freePort, startGateway, type Gateway } from "../support/wrangler-dev";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("the asyncgate CLI under wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const scratch = mkdtempSync(join(tmpdir(), "asyncgate-cli-"));
  const env = (extra: Record<string, string> = {}) => ({
    PATH: process.env["PATH"] ?? "",
    ASYNCGATE_ENDPOINT: `http://async.localhost:${port}`,
    ASYNCGATE_ACCESS_KEY: E2E_KEYS.accessKey,
    ASYNCGATE_SECRET_KEY: E2E_KEYS.secretKey,
    ...extra,
  });

  /** Runs `asyncgate <args>` to its end (or kills it after `killAfterMs`). */
  function cli(
    args: string[],
    options: { env?: Record<string, string>; stdin?: string; killAfterMs?: number; until?: RegExp } = {},
  ): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["dist/cli.js", ...args], {
        env: (options.env ?? env()) as NodeJS.ProcessEnv,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      const stop = () => child.kill("SIGINT");
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (options.until?.test(stdout)) stop();
      });
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = options.killAfterMs ? setTimeout(stop, options.killAfterMs) : null;
      child.on("error", reject);
      child.on("close", (code) => {
        if (timer) clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(options.stdin ?? "");
    });
  }

  const ok = async (args: string[], options?: Parameters<typeof cli>[1]) => {
    const run = await cli(args, options);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    return run.stdout;
  };
  const jsonOf = <T = Record<string, unknown>>(stdout: string) => JSON.parse(stdout) as T;
  const lines = <T = Record<string, unknown>>(stdout: string) =>
    stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as T);

  beforeAll(async () => {
    // The CLI as published: built from these sources.
    execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo: join(scratch, "state") });
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("--help works without keys, for the CLI, every group and every command; no command is a usage error", async () => {
    const keyless = { PATH: process.env["PATH"] ?? "" };
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    expect((await ok(["--version"], { env: keyless })).trim()).toBe(version);
    expect((await ok(["-v"], { env: keyless })).trim()).toBe(version);
    for (const group of ["apps", "keys", "tasks"])
      expect(await ok([group, "--help"], { env: keyless })).toMatch(new RegExp(`^usage: asyncgate ${group} <command>`));
    const global = await ok(["--help"], { env: keyless });
    expect(global).toContain("3 the task failed");
    for (const command of ["apps create", "keys revoke", "tasks wait", "submit", "watch", "sign", "console"])
      expect(global).toContain(command);
    for (const command of [
      "apps create",
      "apps list",
      "keys create",
      "tasks list",
      "submit",
      "watch",
      "sign",
      "console",
    ]) {
      const help = await ok([...command.split(" "), "--help"], { env: keyless });
      expect(help).toMatch(/^usage: asyncgate /);
    }
    expect((await cli([], { env: keyless })).code).toBe(2);
    const unknownCommand = await cli(["frobnicate"], { env: keyless });
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('unknown command "frobnicate"');
  });

  it("an unknown flag is refused by name, before anything is sent", async () => {
    const run = await cli(["apps", "list", "--bogus"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--bogus");
    const missingKeys = await cli(["apps", "list"], { env: { PATH: process.env["PATH"] ?? "" } });
    expect(missingKeys.code).toBe(2);
    expect(missingKeys.stderr).toContain("ASYNCGATE_ACCESS_KEY");
  });

  it("apps: create, list, get, update, pause, resume, rotate-secret, delete, each with an error path", async () => {
    const created = jsonOf<{ name: string; signing_secret: string; retry: { max_attempts: number } }>(
      await ok(["apps", "create", "cliapp", "--origin", origin.url, "--config", '{"retry": {"max_attempts": 2}}']),
    );
    expect(created).toMatchObject({ name: "cliapp", retry: { max_attempts: 2 } });
    expect(created.signing_secret).toMatch(/^whsec_/);
    const again = await cli(["apps", "create", "cliapp", "--origin", origin.url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("409 app_exists");

    const listed = jsonOf<{ total: number; apps: { name: string }[] }>(
      await ok(["apps", "list", "--state", "Active", "--page-size", "5"]),
    );
    expect(listed.apps.map((app) => app.name)).toContain("cliapp");
    expect((await cli(["apps", "list", "--state", "Sleeping"])).code).toBe(2);

    expect(jsonOf(await ok(["apps", "get", "cliapp"]))).toMatchObject({ name: "cliapp", stats: { waiting: 0 } });
    const missing = await cli(["apps", "get", "nosuchapp"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("404 app_not_found");

    writeFileSync(join(scratch, "patch.json"), '{"timeout": 30}');
    expect(jsonOf(await ok(["apps", "update", "cliapp", "--set", `@${join(scratch, "patch.json")}`]))).toMatchObject({
      timeout: 30,
    });
    const badPatch = await cli(["apps", "update", "cliapp", "--set", '{"colour": "red"}']);
    expect(badPatch.code).toBe(1);
    expect(badPatch.stderr).toContain("400 unknown_field");

    expect(jsonOf(await ok(["apps", "pause", "cliapp"]))).toMatchObject({ state: "Paused" });
    expect(jsonOf(await ok(["apps", "resume", "cliapp"]))).toMatchObject({ state: "Active" });
    expect(jsonOf(await ok(["apps", "rotate-secret", "cliapp"]))).toMatchObject({
      signing_secret: expect.stringMatching(/^whsec_/),
    });

    await ok(["apps", "create", "doomed", "--origin", origin.url]);
    expect(jsonOf(await ok(["apps", "delete", "doomed"]))).toEqual({ deleted: "doomed" });
    expect((await cli(["apps", "delete", "doomed"])).code).toBe(1);
  });

  it("keys: create, list, revoke; a key without permissions is a usage error", async () => {
    await cli(["apps", "create", "keyapp", "--origin", origin.url]);
    const key = jsonOf<{ access_key: string; secret_key: string }>(
      await ok(["keys", "create", "keyapp", "--permissions", "submit,query"]),
    );
    expect(key.access_key).toMatch(/^keyapp\./);
    const listed = jsonOf<{ access_key: string }[]>(await ok(["keys", "list", "keyapp"]));
    expect(listed.map((entry) => entry.access_key)).toEqual([key.access_key]);
    // The key works for the CLI too.
    const asKey = env({ ASYNCGATE_ACCESS_KEY: key.access_key, ASYNCGATE_SECRET_KEY: key.secret_key });
    expect(jsonOf(await ok(["submit", "keyapp", "/k", "--data", "{}"], { env: asKey }))).toMatchObject({
      id: expect.any(String),
    });
    expect(jsonOf(await ok(["keys", "revoke", "keyapp", key.access_key]))).toEqual({ revoked: key.access_key });
    const revoked = await cli(["submit", "keyapp", "/k", "--data", "{}"], { env: asKey });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toContain("401");
    const noPermissions = await cli(["keys", "create", "keyapp"]);
    expect(noPermissions.code).toBe(2);
    expect(noPermissions.stderr).toContain("--permissions");
  });

  it("submit: --data text, @file and stdin, headers, --wait, --delay, --dedup; errors for bad durations and unknown apps", async () => {
    await cli(["apps", "create", "subapp", "--origin", origin.url]);
    const waited = jsonOf<{ id: string; state: number; request: { header: Record<string, string[]> } }>(
      await ok(["submit", "subapp", "/hello", "--data", '{"a":1}', "-H", "X-Tag: one", "--wait", "--timeout", "20s"]),
    );
    expect(waited.state).toBe(10);
    expect(waited.request.header["X-Tag"]).toEqual(["one"]);
    const received = origin.received.find((request) => request.headers["asyncgate-task-id"] === waited.id);
    expect(Buffer.from(received!.body, "base64").toString()).toBe('{"a":1}');

    writeFileSync(join(scratch, "body.bin"), Buffer.from([0, 1, 2, 255]));
    const fromFile = jsonOf<{ id: string }>(
      await ok([
        "submit",
        "subapp",
        "/file",
        "--data",
        `@${join(scratch, "body.bin")}`,
        "-H",
        "Content-Type: application/octet-stream",
      ]),
    );
    const fromStdin = jsonOf<{ id: string }>(
      await ok(["submit", "subapp", "/stdin", "--data", "-"], { stdin: "piped body" }),
    );
    for (const [id, body] of [
      [fromFile.id, Buffer.from([0, 1, 2, 255])],
      [fromStdin.id, Buffer.from("piped body")],
    ] as const) {
      const task = jsonOf<{ state: number; request: { body: string } }>(
        await ok(["tasks", "wait", id, "--timeout", "20s"]),
      );
      expect(Buffer.from(task.request.body, "base64")).toEqual(body);
    }

    const delayed = jsonOf<{ id: string }>(
      await ok(["submit", "subapp", "/later", "--delay", "1h", "--dedup", "order-7"]),
    );
    const duplicate = jsonOf<{ id: string; deduplicated: boolean }>(
      await ok(["submit", "subapp", "/later", "--delay", "1h", "--dedup", "order-7"]),
    );
    expect(duplicate).toEqual({ id: delayed.id, deduplicated: true });
    expect(jsonOf(await ok(["tasks", "get", delayed.id]))).toMatchObject({ id: delayed.id, state: 0 });

    // A task that fails: exit 3, its record printed, bodies readable as text by default.
    const failed = await cli(["submit", "subapp", "/status/500", "--retries", "0", "--wait", "--timeout", "20s"]);
    expect(failed.stderr).toBe("");
    expect(failed.code).toBe(3);
    const failedTask = jsonOf<{ id: string; state: number; response: Record<string, unknown> }>(failed.stdout);
    expect(failedTask.state).toBe(11);
    expect(failedTask.response).toMatchObject({
      status_code: 500,
      body: Buffer.from("status 500").toString("base64"),
      body_text: "status 500",
    });
    const waitedFailed = await cli(["tasks", "wait", failedTask.id, "--body", "base64"]);
    expect(waitedFailed.code).toBe(3);
    expect(jsonOf<{ response: Record<string, unknown> }>(waitedFailed.stdout).response).not.toHaveProperty("body_text");
    // --body: base64 is the API's record exactly; json parses a JSON body; text is the default.
    const asJson = jsonOf<{ request: Record<string, unknown>; response: Record<string, unknown> }>(
      await ok(["tasks", "get", waited.id, "--body", "json"]),
    );
    expect(asJson.request["body_json"]).toEqual({ a: 1 });
    expect(asJson.response["body_json"]).toMatchObject({ method: "POST", body: '{"a":1}' });
    const asBase64 = jsonOf<Record<string, unknown>>(await ok(["tasks", "get", waited.id, "--body", "base64"]));
    const asText = jsonOf<{ request: Record<string, unknown> }>(await ok(["tasks", "get", waited.id]));
    expect(asText.request).toEqual({ ...(asBase64["request"] as object), body_text: '{"a":1}' });
    const binary = jsonOf<{ request: Record<string, unknown> }>(await ok(["tasks", "get", fromFile.id]));
    expect(binary.request).not.toHaveProperty("body_text");
    expect((await cli(["tasks", "get", waited.id, "--body", "hex"])).code).toBe(2);

    const badDelay = await cli(["submit", "subapp", "/x", "--delay", "soon"]);
    expect(badDelay.code).toBe(2);
    expect(badDelay.stderr).toContain("--delay must be a duration");
    const unknownApp = await cli(["submit", "ghostapp", "/x", "--data", "{}"]);
    expect(unknownApp.code).toBe(1);
    expect(unknownApp.stderr).toContain("404 app_not_found");
  });

  it("tasks: list (JSON lines, filtered, limited), get, cancel, retry, wait; errors for unknown ids", async () => {
    await cli(["apps", "create", "taskapp", "--origin", origin.url]);
    const done = [];
    for (let i = 0; i < 3; i++)
      done.push(jsonOf<{ id: string }>(await ok(["submit", "taskapp", `/t${i}`, "--data", "{}", "--wait"])).id);
    const listed = lines<{ id: string; state: number }>(
      await ok(["tasks", "list", "taskapp", "--state", "success", "--limit", "2"]),
    );
    expect(listed.map((task) => task.id)).toEqual([done[2], done[1]]);
    expect(listed.every((task) => task.state === 10)).toBe(true);
    expect((await cli(["tasks", "list", "taskapp", "--state", "sleeping"])).code).toBe(2);

    const waiting = jsonOf<{ id: string }>(await ok(["submit", "taskapp", "/later", "--delay", "1h"])).id;
    expect(jsonOf(await ok(["tasks", "cancel", waiting]))).toMatchObject({ id: waiting, state: 11, error: "canceled" });
    const notWaiting = await cli(["tasks", "cancel", waiting]);
    expect(notWaiting.code).toBe(1);
    expect(notWaiting.stderr).toContain("409 task_not_waiting");

    expect(jsonOf(await ok(["tasks", "retry", waiting]))).toMatchObject({ id: waiting, state: 0 });
    expect(jsonOf(await ok(["tasks", "wait", waiting, "--timeout", "20s"]))).toMatchObject({ id: waiting, state: 10 });
    const unknown = "01aa8888888888888888888888888888";
    for (const command of [
      ["tasks", "get", unknown],
      ["tasks", "retry", unknown],
      ["tasks", "wait", unknown],
    ]) {
      const run = await cli(command);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("404 task_not_found");
    }
  });

  it("watch prints results as JSON lines and says when connected; an unreachable gateway is one line and exit 1", async () => {
    await cli(["apps", "create", "watchapp", "--origin", origin.url]);
    const watching = cli(["watch", "watchapp"], { until: /"state":10/, killAfterMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const { id } = jsonOf<{ id: string }>(await ok(["submit", "watchapp", "/w", "--data", "{}"]));
    const watched = await watching;
    expect(lines<{ id: string; seq: number }>(watched.stdout)[0]).toMatchObject({ id, seq: expect.any(Number) });
    expect(watched.stderr).toBe("watching watchapp (connected; Ctrl-C to stop)\n");
    expect(watched.code).toBe(130);

    const nowherePort = await freePort();
    const nowhere = env({ ASYNCGATE_ENDPOINT: `http://async.localhost:${nowherePort}` });
    const said = (command: string) =>
      `asyncgate ${command}: cannot reach the gateway at http://async.localhost:${nowherePort} (is \`npm start\` running?)\n`;
    const started = Date.now();
    const unreachable = await cli(["watch", "watchapp"], { env: nowhere, killAfterMs: 10_000 });
    expect(unreachable.stderr).toBe(said("watch"));
    expect(unreachable.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    const waitNowhere = await cli(["tasks", "wait", "01aa8888888888888888888888888888", "--timeout", "2s"], {
      env: nowhere,
    });
    expect(waitNowhere.code).toBe(1);
    expect(waitNowhere.stderr).toBe(said("tasks wait"));
  });

  it("sign prints a curl command that works; console prints a URL with the keys in its fragment", async () => {
    const curl = await ok(["sign", "GET", `http://127.0.0.1:${port}/v1/apps?page_size=1`]);
    expect(curl).toMatch(
      /^curl -i -X GET 'http:\/\/127\.0\.0\.1:\d+\/v1\/apps\?page_size=1' -H 'X-Qiniu-Date: \d{8}T\d{6}Z' -H 'Authorization: Qiniu /,
    );
    const answer = execFileSync("sh", ["-c", `${curl.trim()} -s -o /dev/null -w '%{http_code}'`]).toString();
    expect(answer).toBe("200");
    expect((await cli(["sign", "GET", "not a url"])).code).toBe(2);

    const url = (await ok(["console"])).trim();
    expect(url).toBe(`http://async.localhost:${port}/console#ak=${E2E_KEYS.accessKey}&sk=${E2E_KEYS.secretKey}`);
    expect((await cli(["console"], { env: { PATH: process.env["PATH"] ?? "" } })).code).toBe(2);
  });
});
