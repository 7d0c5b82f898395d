// Starting and stopping the systems under test: asyncgate and the bare Worker, each under
// `wrangler dev` (behind its dev proxy) and straight on workerd's own port (Miniflare), and
// the Node + BullMQ + redis-server peer. Every process started here is stopped here.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

// wrangler logs where the required secrets came from ("Using secrets defined in process.env") to
// stdout, which `npm run bench -- --json` keeps for its JSON document: only its warnings show.
process.env["WRANGLER_LOG"] ??= "warn";
import { tree } from "./proc.mjs";

export const KEYS = { accessKey: "bench-ak", secretKey: "bench-sk" };
const quietEnv = {
  WRANGLER_SEND_METRICS: "false",
  X_LOCAL_OBSERVABILITY: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};
Object.assign(process.env, quietEnv);

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not start in time`);
    await sleep(100);
  }
}

/** Every process group started here, so that even a crash of the bench leaves nothing running. */
const groups = new Set();
process.on("exit", () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

function track(child) {
  groups.add(child.pid);
  child.once("exit", () => groups.delete(child.pid));
  return child;
}

function killGroup(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      resolve();
    }
    setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 5_000).unref();
  });
}

/** `wrangler dev` for a config; requests go through wrangler's dev proxy. */
export async function startWranglerDev(name, config, vars = {}) {
  const port = await freePort();
  const persist = mkdtempSync(join(tmpdir(), "asyncgate-bench-"));
  const args = [
    "dev",
    "-c",
    config,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(await freePort()),
    "--persist-to",
    persist,
    "--show-interactive-dev-session=false",
  ];
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);
  const child = track(
    spawn("node_modules/.bin/wrangler", args, {
      // Its "Ready on" line is an info log: the bench's own warn level (above) would hide it.
      env: { ...process.env, CI: "true", WRANGLER_LOG: "info" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    }),
  );
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  await waitFor(() => /Ready on/.test(output) || child.exitCode !== null, `wrangler dev (${name})`);
  if (child.exitCode !== null) throw new Error(`wrangler dev (${name}) exited:\n${output}`);
  return {
    name,
    mode: "wrangler dev",
    port,
    pids: () => tree(child.pid),
    workerdPids: () => tree(child.pid, "workerd"),
    stop: async () => {
      await killGroup(child);
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

let bundled = null;
async function bundleAsyncgate() {
  bundled ??= (async () => {
    // Inside the project: workerd will not load a module from outside its root.
    const outfile = "bench/.build/asyncgate.js";
    await build({
      entryPoints: ["src/index.ts"],
      outfile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      conditions: ["workerd", "worker", "browser"],
      // As wrangler resolves: some dependencies (fast-xml-parser's) name only a "main" entry.
      mainFields: ["module", "main"],
      external: ["cloudflare:*"],
      logLevel: "warning",
    });
    return outfile;
  })();
  return bundled;
}

function workerdChildren() {
  return new Set(tree(process.pid, "workerd"));
}

/**
 * A Worker straight on workerd's own port (Miniflare, no dev proxy). asyncgate runs without its
 * static assets (the console) unless `withAssets`: locally, Miniflare puts Cloudflare's asset
 * router (two more JavaScript Workers) in front of every request of a Worker with assets, where
 * in production that routing is the platform's, outside the Worker's isolate and CPU.
 */
export async function startDirect(name, kind, vars = {}, extra = {}, { withAssets = false } = {}) {
  const before = workerdChildren();
  const persist = mkdtempSync(join(tmpdir(), "asyncgate-bench-"));
  let options;
  if (kind === "asyncgate") {
    const { workerOptions } = unstable_getMiniflareWorkerOptions("wrangler.toml");
    delete workerOptions.modulesRules; // the bundle is one module
    if (!withAssets) delete workerOptions.assets;
    options = {
      ...workerOptions,
      name: "asyncgate",
      modules: true,
      scriptPath: await bundleAsyncgate(),
      bindings: { ...workerOptions.bindings, ...vars },
      durableObjectsPersist: process.env.BENCH_NO_PERSIST ? false : persist,
    };
  } else {
    options = {
      name: "bare",
      modules: true,
      scriptPath: "bench/bare-worker.js",
      compatibilityDate: "2026-10-01",
      compatibilityFlags: ["no_web_socket_compression"],
      durableObjects: { SOCKETS: { className: "Sockets", useSQLite: true } },
    };
  }
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      ...options,
      ...extra,
      host: "127.0.0.1",
      port: await freePort(),
      cf: false,
      verbose: false,
    }),
  );
  const url = await mf.ready;
  const mine = [...workerdChildren()].filter((pid) => !before.has(pid));
  return {
    name,
    mode: withAssets ? "workerd direct + assets router" : "workerd direct",
    port: Number(url.port),
    pids: () => mine,
    workerdPids: () => mine,
    stop: async () => {
      await mf.dispose();
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

export function redisAvailable() {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

/** The Node HTTP + BullMQ peer with its own redis-server. */
export async function startBullmq(originUrl) {
  const redisPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "asyncgate-bench-redis-"));
  const redis = track(
    spawn(
      "redis-server",
      ["--port", String(redisPort), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
      { stdio: "ignore", detached: true },
    ),
  );
  await waitFor(
    () => spawnSync("redis-cli", ["-p", String(redisPort), "ping"], { encoding: "utf8" }).stdout?.includes("PONG"),
    "redis-server",
  );
  const port = await freePort();
  const peer = track(
    spawn("node_modules/.bin/node", ["bench/bullmq-peer.mjs", String(port), String(redisPort), originUrl], {
      env: { ...process.env, BENCH_ACCESS_KEY: KEYS.accessKey, BENCH_SECRET_KEY: KEYS.secretKey },
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    }),
  );
  let output = "";
  peer.stdout.on("data", (chunk) => (output += chunk));
  await waitFor(() => output.includes("ready"), "bullmq peer");
  return {
    name: "node+bullmq",
    mode: "node",
    port,
    pids: () => [...tree(peer.pid), ...tree(redis.pid)],
    workerdPids: () => [],
    stop: async () => {
      await killGroup(peer);
      await killGroup(redis);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
