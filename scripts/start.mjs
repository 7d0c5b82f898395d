// `npm start`: the gateway locally under `wrangler dev`, a demo origin, and a demo app,
// then copy-pasteable requests. Ctrl-C stops everything this script started.
//   PORT (default 8787), ORIGIN_PORT (default 8788)
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { startOrigin } from "./origin.mjs";
import { localKeys, sign } from "./sign.mjs";

const port = Number(process.env.PORT ?? 8787);
const originPort = Number(process.env.ORIGIN_PORT ?? 8788);
const controlHost = `localhost:${port}`;
const demoHost = `demo.async.localhost:${port}`;

// Local state (apps, tasks, keys) lives under .wrangler/state; the demo app's signing secret is
// kept beside it, so a restart does not rotate it (and a reset of the state forgets both).
// Another PORT keeps its own state, so two can run side by side.
const STATE_DIR = port === 8787 ? ".wrangler/state" : `.wrangler/state-${port}`;
const DEMO_SECRET_FILE = `${STATE_DIR}/asyncgate-demo-secret.json`;
// Secrets of other apps the demo origin was told (POST /__trust), trusted again at the next start.
const TRUSTED_FILE = `${STATE_DIR}/asyncgate-origin-trusted.json`;

/** Binds `portNumber` (0: any free one) on loopback and lets it go: the port bound, or null when taken. */
function probePort(portNumber) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(null));
    probe.listen(portNumber, "127.0.0.1", () => {
      const { port: bound } = probe.address();
      probe.close(() => resolve(bound));
    });
  });
}

// A port already taken (another `npm start`?) is refused with one line, before anything starts.
for (const [portNumber, variable] of [
  [port, "PORT"],
  [originPort, "ORIGIN_PORT"],
]) {
  if ((await probePort(portNumber)) === null) {
    console.error(
      `npm start: port ${portNumber} is in use (another npm start?). Stop it, or pick free ports: PORT=8797 ORIGIN_PORT=8798 npm start (${variable} is this one)`,
    );
    process.exit(1);
  }
}

// A second instance's inspector takes any free port (the first keeps wrangler's default).
const inspector = port === 8787 ? [] : ["--inspector-port", String(await probePort(0))];

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("created .dev.vars from .dev.vars.example (local admin keys)");
}

// The web console's files (dist/public), served at /console; rebuilt at every start.
await import("./build-console.mjs");

const origin = await startOrigin({
  port: originPort,
  onTrust: (secret) => {
    const trusted = readJson(TRUSTED_FILE, []);
    if (!trusted.includes(secret)) writeState(TRUSTED_FILE, [...trusted, secret]);
  },
});
for (const secret of readJson(TRUSTED_FILE, [])) await origin.trustSigningSecret(secret);
console.log(`demo origin listening on ${origin.url}`);

const wrangler = spawn(
  "node_modules/.bin/wrangler",
  [
    "dev",
    "-c",
    "wrangler.toml",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--var",
    "ALLOW_PRIVATE_ORIGINS:true",
    "--show-interactive-dev-session=false",
    "--persist-to",
    STATE_DIR,
    ...inspector,
  ],
  {
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      X_LOCAL_OBSERVABILITY: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
    },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  },
);
let ready = false;
wrangler.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (!ready && /Ready on/.test(chunk.toString())) {
    ready = true;
    setUpDemo().catch((error) => console.error("demo setup failed:", error));
  }
});

const stop = () => {
  try {
    process.kill(-wrangler.pid, "SIGTERM");
  } catch {
    // already gone
  }
  void origin.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
wrangler.on("exit", (code) => {
  console.error(`wrangler dev exited (${code})`);
  void origin.close().then(() => process.exit(code ?? 1));
});

/** @param {string} host @param {string} method @param {string} path @param {string} [body] */
function call(host, method, path, body = "") {
  const headers = { host, authorization: sign(method, `http://${host}${path}`, body) };
  if (body) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let data = "";
      res.on("data", (chunk) => (data += chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function setUpDemo() {
  const app = JSON.stringify({ name: "demo", origin: origin.url });
  const created = await call(controlHost, "POST", "/v1/apps", app);
  let signingSecret;
  if (created.status === 409) {
    // The demo app outlived an earlier run: its secret was shown then and kept beside the local
    // state; only when that is gone is it rotated (the old one keeps signing beside it for 24 h).
    await call(controlHost, "PATCH", "/v1/apps/demo", JSON.stringify({ origin: origin.url }));
    signingSecret = keptDemoSecret();
    signingSecret ??= JSON.parse(
      (await call(controlHost, "POST", "/v1/apps/demo/signing-secret/rotate")).body,
    ).signing_secret;
  } else if (created.status === 201) {
    signingSecret = JSON.parse(created.body).signing_secret;
  } else {
    throw new Error(`creating the demo app: ${created.status} ${created.body}`);
  }
  keepDemoSecret(signingSecret);
  // The demo origin checks every delivery's Standard Webhooks signature with asyncgate's Receiver.
  await origin.trustSigningSecret(signingSecret);

  const body = '{"hello":"world"}';
  const submitted = await call(demoHost, "POST", "/hello", body);
  const { id } = JSON.parse(submitted.body);
  const submitToken = sign("POST", `http://${demoHost}/hello`, body);
  const getToken = sign("GET", `http://${controlHost}/v1/task/${id}`);
  const keys = localKeys();
  console.log(`
asyncgate is running: app "demo" on http://${demoHost} → ${origin.url}

Submit a task (any method, path and body on the app host):
  curl -i -X POST http://${demoHost}/hello \\
    -H 'Content-Type: application/json' \\
    -H 'Authorization: ${submitToken}' \\
    -d '${body}'

Read the task this script just submitted (${id}):
  curl -s http://${controlHost}/v1/task/${id} \\
    -H 'Authorization: ${getToken}'

Sign any other request: node scripts/sign.mjs <METHOD> <URL> [body]

The web console, signed in with the local admin keys (they stay in the URL fragment):
  http://${controlHost}/console#ak=${encodeURIComponent(keys.accessKey)}&sk=${encodeURIComponent(keys.secretKey)}

The CLI, in another shell:
  export ASYNCGATE_ACCESS_KEY=${keys.accessKey} ASYNCGATE_SECRET_KEY=${keys.secretKey}${port === 8787 ? "" : ` ASYNCGATE_ENDPOINT=http://async.localhost:${port}`}
  npx asyncgate submit demo /hello --data '{"hello":"world"}' --wait

Ctrl-C stops the gateway and the demo origin. Local state (apps, tasks, keys) is kept in
${STATE_DIR}: rm -rf ${STATE_DIR} starts afresh. Another one beside this, with its own state:
  PORT=8797 ORIGIN_PORT=8798 npm start
`);
}

/** A JSON file of the local state, or `fallback` when there is none. */
function readJson(file, fallback) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return fallback;
  }
}

function writeState(file, value) {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(file, JSON.stringify(value) + "\n", { mode: 0o600 });
}

/** The demo app's signing secret kept by an earlier run, if any. */
function keptDemoSecret() {
  return readJson(DEMO_SECRET_FILE, {}).signing_secret ?? null;
}

function keepDemoSecret(signingSecret) {
  writeState(DEMO_SECRET_FILE, { signing_secret: signingSecret });
}
