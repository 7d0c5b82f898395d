// Profiles workerd's JavaScript while asyncgate drains a backlog or ingests (CPU profile over the
// V8 inspector), and prints the functions with the most self time. A tool for tuning the hot path.
//   node bench/profile.mjs [ingest|drain]
import { request } from "node:http";
import autocannon from "autocannon";
import qiniu from "qiniu";
import WebSocket from "ws";
import { startOrigin } from "../scripts/origin.mjs";
import { KEYS, freePort, startDirect } from "./systems.mjs";

const mode = process.argv[2] ?? "drain";
const origin = await startOrigin({ quiet: true });
const inspectorPort = await freePort();
const system = await startDirect(
  "asyncgate",
  "asyncgate",
  { ADMIN_ACCESS_KEY: KEYS.accessKey, ADMIN_SECRET_KEY: KEYS.secretKey, ALLOW_PRIVATE_ORIGINS: "true" },
  { inspectorPort },
);
const mac = new qiniu.auth.digest.Mac(KEYS.accessKey, KEYS.secretKey);
const sign = (method, host, path, body = "") =>
  qiniu.util.generateAccessTokenV2(
    mac,
    `http://${host}${path}`,
    method,
    body ? "application/json" : "",
    body || undefined,
    {},
  );
const call = (host, method, path, body = "") =>
  new Promise((resolve) => {
    const headers = { host, authorization: sign(method, host, path, body) };
    if (body) headers["content-type"] = "application/json";
    const req = request({ host: "127.0.0.1", port: system.port, method, path, headers }, (res) => {
      let data = "";
      res.on("data", (chunk) => (data += chunk));
      res.on("end", () => resolve(data));
    });
    req.end(body);
  });
const control = `localhost:${system.port}`;
await call(
  control,
  "POST",
  "/v1/apps",
  JSON.stringify({ name: "p", origin: origin.url, state: mode === "drain" ? "Paused" : "Active" }),
);
const host = `p.async.localhost:${system.port}`;
const body = JSON.stringify({ payload: "x".repeat(1000) });
const submit = {
  method: "POST",
  path: "/p",
  headers: {
    host,
    "content-type": "application/json",
    authorization: qiniu.util.generateAccessTokenV2(mac, `http://${host}/p`, "POST", "application/json", body, {}),
  },
  body,
};
if (mode === "drain")
  await autocannon({ url: `http://127.0.0.1:${system.port}`, connections: 32, amount: 3000, requests: [submit] });

const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
const profiles = [];
for (const target of targets) {
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve) => ws.once("open", resolve));
  let id = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.id && pending.has(message.id)) pending.get(message.id)(message.result);
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 200 });
  await send("Profiler.start");
  profiles.push({ target, send, ws });
}
if (mode === "drain") await call(control, "PATCH", "/v1/apps/p", JSON.stringify({ state: "Active" }));
else await autocannon({ url: `http://127.0.0.1:${system.port}`, connections: 64, duration: 5, requests: [submit] });
await new Promise((resolve) => setTimeout(resolve, mode === "drain" ? 8000 : 500));
for (const { target, send, ws } of profiles) {
  const { profile } = await send("Profiler.stop");
  ws.close();
  const self = new Map();
  const total = profile.samples.length;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map();
  for (const sample of profile.samples) counts.set(sample, (counts.get(sample) ?? 0) + 1);
  for (const [nodeId, count] of counts) {
    const node = byId.get(nodeId);
    const frame = node.callFrame;
    const key = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + count);
  }
  console.log(`\n== ${target.title} (${total} samples)`);
  for (const [key, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
  // Native time (SQLite exec, crypto…) charged to the nearest caller in our own bundle.
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const ours = new Map();
  for (const [nodeId, count] of counts) {
    let node = byId.get(nodeId);
    const leaf = node.callFrame.functionName || "(anonymous)";
    while (node && !node.callFrame.url.includes("asyncgate.js")) node = byId.get(parent.get(node.id));
    if (!node) continue;
    const key = `${leaf} ← ${node.callFrame.functionName}:${node.callFrame.lineNumber + 1}`;
    ours.set(key, (ours.get(key) ?? 0) + count);
  }
  if (ours.size) console.log("-- by caller in asyncgate.js");
  for (const [key, count] of [...ours].sort((a, b) => b[1] - a[1]).slice(0, 15))
    console.log(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
}
await system.stop();
await origin.close();
