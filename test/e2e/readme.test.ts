// Proves the README's and docs/delivery-policies.md's examples run as written against a started gateway: every shell block marked
// `<!-- runs in test/e2e/readme.test.ts -->` is run line by line, with only the ports, the local
// admin keys and `npx asyncgate` (the CLI built from these sources) pointed at this run's gateway
// and demo origin. Each line must exit 0, or the code its comment names (`# exit code 3`).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

const MARKER = "<!-- runs in test/e2e/readme.test.ts -->";

/** The documents whose marked blocks run, in this order (the README's create the app `shop` the others use). */
const DOCUMENTS = ["README.md", "docs/delivery-policies.md"];

/** The marked blocks of a document (fences may be indented, inside a list), each as its lines, continuations joined. */
export function runnableBlocks(markdown: string): string[][] {
  const blocks: string[][] = [];
  let at = markdown.indexOf(MARKER);
  while (at !== -1) {
    const open = markdown.indexOf("```sh\n", at);
    const close = markdown.slice(open + 6).search(/\n\s*```/) + open + 6;
    const body = markdown.slice(open + 6, close);
    blocks.push(
      body
        .replace(/\\\n\s*/g, " ")
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "" && !line.startsWith("#")),
    );
    at = markdown.indexOf(MARKER, close);
  }
  return blocks;
}

describe("the README's examples under wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const scratch = mkdtempSync(join(tmpdir(), "asyncgate-readme-"));
  const cli = `${process.execPath} ${resolve("dist/cli.js")}`;

  beforeAll(async () => {
    execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo: join(scratch, "state") });
    // What `npm start` does: the app "demo" on the demo origin, which verifies its deliveries.
    const created = await signedCall(port, `localhost:${port}`, "POST", "/v1/apps", {
      body: JSON.stringify({ name: "demo", origin: origin.url }),
    });
    expect(created.status).toBe(201);
    await origin.trustSigningSecret(created.json<{ signing_secret: string }>().signing_secret);
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** A README line as this run runs it: its ports, keys and CLI, nothing else changed. */
  const localised = (line: string) =>
    line
      .replaceAll("npx asyncgate", cli)
      .replaceAll("localhost:8787", `localhost:${port}`)
      .replaceAll("http://127.0.0.1:8788", origin.url)
      .replaceAll("dev-admin-ak", E2E_KEYS.accessKey)
      .replaceAll("dev-admin-sk-change-me", E2E_KEYS.secretKey);

  it("runs every marked block, in order, each line with the exit code it promises", async () => {
    const blocks = DOCUMENTS.flatMap((document) => runnableBlocks(readFileSync(document, "utf8")));
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    const env: Record<string, string> = {
      PATH: process.env["PATH"] ?? "",
      HOME: scratch,
      ASYNCGATE_ENDPOINT: `http://async.localhost:${port}`,
    };
    const background: ChildProcess[] = [];
    const results: { line: string; code: number | null; expected: number; output: string }[] = [];
    try {
      for (const block of blocks) {
        for (const line of block) {
          const comment = line.indexOf("  #");
          const command = localised(comment === -1 ? line : line.slice(0, comment)).trim();
          const expected = Number(/# exit code (\d+)/.exec(line)?.[1] ?? 0);
          const exported = /^export (.+)$/.exec(command);
          if (exported) {
            for (const pair of exported[1]!.split(/\s+/)) {
              const [name, value] = pair.split("=");
              env[name!] = value!;
            }
            continue;
          }
          if (command.endsWith("&")) {
            const child = spawn("bash", ["-c", command.slice(0, -1)], {
              cwd: scratch,
              env: env as NodeJS.ProcessEnv,
              stdio: "ignore",
            });
            background.push(child);
            continue;
          }
          const run = await new Promise<{ code: number | null; output: string }>((done) => {
            const child = spawn("bash", ["-o", "pipefail", "-c", command], {
              cwd: scratch,
              env: env as NodeJS.ProcessEnv,
            });
            let output = "";
            child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
            child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
            child.on("close", (code) => done({ code, output }));
          });
          results.push({ line, code: run.code, expected, output: run.output });
        }
      }
    } finally {
      for (const child of background) child.kill("SIGINT");
    }
    // curl exits 0 whatever the status: a signed request run with `| sh` must have been answered 2xx.
    const wrong = results.filter(
      (result) =>
        result.code !== result.expected || (/\| sh\b/.test(result.line) && !/HTTP\/1\.1 2\d\d/.test(result.output)),
    );
    // Matched on the whole output (curl's progress meter may run long before the status line), shown cut.
    expect(wrong.map((result) => ({ ...result, output: result.output.slice(-400) }))).toEqual([]);
    // The curl block's submission was accepted and the shop task failed as its comment says.
    expect(results.some((result) => /HTTP\/1\.1 202/.test(result.output))).toBe(true);
    expect(results.length).toBeGreaterThanOrEqual(17);
  }, 120_000);
});
