// `npm run bench [-- --quick]`: asyncgate against the bare Worker and a Node + BullMQ + Redis
// peer, in one run, loopback only, bounded in time. Prints one markdown table and writes it,
// with machine, versions and date, to bench/results/latest.md.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { writeFileSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import qiniu from "qiniu";
import WebSocket from "ws";
import { startOrigin } from "../scripts/origin.mjs";
import { cpuSeconds, rssMb } from "./proc.mjs";
import { ASSUMPTIONS, PRICES, allInPerMillion } from "./prices.mjs";
import { KEYS, redisAvailable, startBullmq, startDirect, startWranglerDev } from "./systems.mjs";

const quick = process.argv.includes("--quick");
/** `--json`: the figures as one JSON document on stdout (the table still goes to bench/results/latest.md). */
const asJson = process.argv.includes("--json");
const onlyIndex = process.argv.indexOf("--only");
/**
 * `--only drain,subscribers`: run just these sections (for iterating on one of them). Sections:
 * ingest, latency, drain, steady, trickle, subscribers, scale, shards, retention.
 */
const only = onlyIndex === -1 ? null : new Set(process.argv[onlyIndex + 1]?.split(","));
const enabled = (section) => !only || only.has(section);
const P = {
  ingestSeconds: quick ? 2 : 5,
  rounds: 3,
  latencySamples: quick ? 30 : 200,
  drainTasks: quick ? 2_000 : 10_000,
  subscribers: 1_000,
  scaleSeconds: quick ? 2 : 5,
  /** The steady shape: tasks per second submitted to an active app, for this long. */
  steadyRate: 100,
  steadySeconds: quick ? 10 : 30,
  /** The trickle shape: tasks one at a time, a second apart. */
  trickleTasks: quick ? 20 : 60,
  /** Tasks that retention removes, to measure the rows its deletes write. */
  retentionTasks: 1000,
};
const BODY = JSON.stringify({ payload: "x".repeat(1024 - 16) }); // 1 KiB of JSON
const mac = new qiniu.auth.digest.Mac(KEYS.accessKey, KEYS.secretKey);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values, p) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))];
const started = Date.now();
const log = (message) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);

function sign(method, host, path, body = "", contentType = body ? "application/json" : "") {
  return qiniu.util.generateAccessTokenV2(mac, `http://${host}${path}`, method, contentType, body || undefined, {});
}

function call(port, host, method, path, body = "") {
  const headers = { host, authorization: sign(method, host, path, body) };
  if (body) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let data = "";
      res.on("data", (chunk) => (data += chunk));
      res.on("end", () => resolve({ status: res.statusCode, json: () => JSON.parse(data), text: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const submitRequest = (host) => ({
  method: "POST",
  path: "/bench",
  headers: { host, "content-type": "application/json", authorization: sign("POST", host, "/bench", BODY) },
  body: BODY,
});

/**
 * Loads a server for `seconds`: with wrk (C, one thread: it leaves the 2 cores to the server)
 * when it is installed, else with autocannon (Node, which costs the server about a core).
 */
async function load(port, requests, connections, seconds) {
  if (WRK) return loadWithWrk(port, requests, connections, seconds);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    requests,
    timeout: 10,
  });
  const ok = result["2xx"];
  return {
    rps: ok / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    errors: result.non2xx + result.errors + result.timeouts,
  };
}

const WRK =
  spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout?.includes("wrk") ||
  spawnSync("wrk", ["--version"], { encoding: "utf8" }).stderr?.includes("wrk");
const LOADER = WRK ? "wrk (1 thread)" : "autocannon";

async function loadWithWrk(port, requests, connections, seconds) {
  // One Lua script cycles through the requests (one per app host), each with its own headers.
  const lua = `
local requests = {${requests
    .map(
      (r) =>
        `{ method = "${r.method}", path = "${r.path}", body = ${JSON.stringify(r.body)}, headers = { ${Object.entries(
          r.headers,
        )
          .map(([name, value]) => `["${name === "host" ? "Host" : name}"] = ${JSON.stringify(value)}`)
          .join(", ")} } }`,
    )
    .join(",\n")}}
local i = 0
request = function()
  i = i % #requests + 1
  local r = requests[i]
  return wrk.format(r.method, r.path, r.headers, r.body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99), 0))
end
`;
  const script = join(tmpdir(), `asyncgate-wrk-${process.pid}.lua`);
  writeFileSync(script, lua);
  const { stdout } = await new Promise((resolve, reject) => {
    const child = spawn(
      "wrk",
      ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", script, `http://127.0.0.1:${port}`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("close", () => resolve({ stdout: out }));
    child.on("error", reject);
  });
  const match = /RESULT (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(stdout);
  if (!match) throw new Error(`wrk printed no result:\n${stdout}`);
  const [total, errors, durationUs, p50Us, p99Us] = match.slice(1).map(Number);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const ok = total - non2xx;
  return {
    rps: ok / (durationUs / 1e6),
    p50: Number((p50Us / 1000).toFixed(1)),
    p99: Number((p99Us / 1000).toFixed(1)),
    ok,
    errors: errors + non2xx,
  };
}

// ---- the gateway's apps ------------------------------------------------------------------

async function createApp(system, name, config = {}) {
  const control = `localhost:${system.port}`;
  await call(system.port, control, "DELETE", `/v1/apps/${name}`);
  const created = await call(
    system.port,
    control,
    "POST",
    "/v1/apps",
    JSON.stringify({ name, origin: ORIGIN.url, ...config }),
  );
  if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.text}`);
}

async function stats(system, name) {
  return (await call(system.port, `localhost:${system.port}`, "GET", `/v1/apps/${name}`)).json().stats;
}

function subscriber(port, app) {
  const path = `/v1/tasks?app=${app}`;
  const host = `localhost:${port}`;
  return new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, authorization: sign("GET", host, path) } });
}

// ---- sections -------------------------------------------------------------------------------

const rows = [];
const row = (section, system, setting, cells) => rows.push({ section, system, setting, ...cells });

async function ingest(systems) {
  const runs = new Map();
  for (let round = 1; round <= P.rounds; round++) {
    for (const system of systems) {
      for (const connections of [16, 64]) {
        // asyncgate: a fresh, active app per run, so the run includes its own queue sends and
        // deliveries (steady state), then paused so its leftover backlog cannot load the next run.
        const app = `ingest-${round}-${connections}`;
        if (system.createApp) await system.createApp(app);
        const host = system.createApp
          ? `${app}.async.localhost:${system.port}`
          : `bench.async.localhost:${system.port}`;
        const cpu0 = cpuSeconds(system.pids());
        const result = await load(system.port, [submitRequest(host)], connections, P.ingestSeconds);
        const cpu = cpuSeconds(system.pids()) - cpu0;
        if (system.pauseApp) await system.pauseApp(app);
        const key = `${system.name}|${system.mode}|${connections}`;
        runs.set(key, [...(runs.get(key) ?? []), { ...result, cpuUs: (cpu / Math.max(1, result.ok)) * 1e6 }]);
        log(
          `ingest round ${round} ${key}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99} ms, errors ${result.errors}`,
        );
        await sleep(300);
      }
    }
  }
  const summary = new Map();
  for (const [key, list] of runs) {
    summary.set(key, {
      rps: median(list.map((r) => r.rps)),
      p50: median(list.map((r) => r.p50)),
      p99: median(list.map((r) => r.p99)),
      cpuUs: median(list.map((r) => r.cpuUs)),
      errors: list.reduce((sum, r) => sum + r.errors, 0),
    });
  }
  for (const [key, s] of summary) {
    const [name, mode, connections] = key.split("|");
    const bare = summary.get(
      `bare worker|${mode === "node" || mode.startsWith("workerd direct") ? "workerd direct" : mode}|${connections}`,
    );
    const ratio =
      bare && name !== "bare worker"
        ? ` (${(s.rps / bare.rps).toFixed(2)}× rps, ${(s.p99 / Math.max(1, bare.p99)).toFixed(2)}× p99, ${(s.cpuUs / bare.cpuUs).toFixed(2)}× CPU)`
        : "";
    row("1 ingest", name, `${mode}, c${connections}`, {
      throughput: `${s.rps.toFixed(0)} req/s`,
      p50: s.p50,
      p99: s.p99,
      cpu: s.cpuUs.toFixed(0),
      note: `${ratio}${s.errors ? ` ${s.errors} errors` : ""}`.trim(),
    });
  }
  return summary;
}

/** Waits (up to 30 s) until the system's processes use under 5 % of a core: earlier sections' deliveries are done. */
async function settle(system) {
  for (let waited = 0; waited < 30; waited++) {
    const cpu0 = cpuSeconds(system.pids());
    await sleep(1000);
    if (cpuSeconds(system.pids()) - cpu0 < 0.05) return;
  }
  log(`${system.name} (${system.mode}) did not settle in 30 s`);
}

async function latency(system) {
  await settle(system);
  // The origin keeps every request it got (the ingest sections' tens of thousands): start afresh,
  // so its garbage collector does not weigh on the samples.
  ORIGIN.received.length = 0;
  const port = system.port;
  const host = `latency.async.localhost:${port}`;
  await createApp(system, "latency");
  await createApp(system, "background");
  const ws = subscriber(port, "latency");
  const pushedAt = new Map();
  ws.on("message", (data) => {
    const text = data.toString();
    if (text.startsWith("{")) {
      const frame = JSON.parse(text);
      if (frame.id) pushedAt.set(frame.id, Date.now());
    }
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const heartbeat = setInterval(() => ws.send("OK"), 5_000);
  /** First receipt of each task at the origin, and how many tasks arrived more than once. */
  const receivedAt = () => {
    const first = new Map();
    let duplicates = 0;
    for (const r of ORIGIN.received) {
      const id = r.headers["asyncgate-task-id"];
      if (id === undefined) continue; // the BullMQ peer's deliveries
      if (first.has(id)) duplicates++;
      else first.set(id, r.at);
    }
    first.duplicates = duplicates;
    return first;
  };

  const sample = async (label, background) => {
    const submits = [];
    let heavy = null;
    if (background)
      heavy = load(
        port,
        [submitRequest(`background.async.localhost:${port}`)],
        16,
        Math.ceil((P.latencySamples * 40) / 1000) + 1,
      );
    for (let i = 0; i < P.latencySamples; i++) {
      const t0 = Date.now();
      const response = await call(port, host, "POST", "/lat", "{}");
      submits.push({ id: response.json().id, t0 });
      await sleep(40);
    }
    const heavyResult = heavy ? await heavy : null;
    await sleep(2_000);
    const origin = receivedAt();
    const toOrigin = submits.filter((s) => origin.has(s.id)).map((s) => origin.get(s.id) - s.t0);
    const toSubscriber = submits.filter((s) => pushedAt.has(s.id)).map((s) => pushedAt.get(s.id) - s.t0);
    const note = heavyResult ? `background c16 at ${heavyResult.rps.toFixed(0)} req/s` : "one task every 40 ms";
    row("2 end-to-end", "asyncgate", `${system.mode}, ${label}: submit → origin`, {
      p50: percentile(toOrigin, 50),
      p99: percentile(toOrigin, 99),
      note: `${note}; ${toOrigin.length}/${submits.length} seen; ${origin.duplicates} repeated deliveries so far`,
    });
    row("2 end-to-end", "asyncgate", `${system.mode}, ${label}: submit → subscriber`, {
      p50: percentile(toSubscriber, 50),
      p99: percentile(toSubscriber, 99),
      note: `${toSubscriber.length}/${submits.length} seen`,
    });
    log(
      `latency ${label}: origin p50 ${percentile(toOrigin, 50)} ms, subscriber p50 ${percentile(toSubscriber, 50)} ms`,
    );
  };
  await sample("light", false);
  await sample("heavy", true);
  clearInterval(heartbeat);
  ws.close();
  await system.pauseApp("background");
  return pushedAt;
}

/** The gateway's cost meters (GET /v1/meters) over the Worker and the objects of `apps`. */
async function readMeters(system, apps) {
  return (await call(system.port, `localhost:${system.port}`, "GET", `/v1/meters?apps=${apps.join(",")}`)).json()
    .meters;
}

/**
 * Meters `after - before`. The counters are the isolate's, every app's: rows that retention wrote
 * meanwhile (the retention section's app, the only one whose tasks age out during a run) are taken
 * out of the window's SQLite rows written; retention is priced on its own (section "retention").
 */
function delta(after, before) {
  const counts = Object.fromEntries(Object.keys(after).map((key) => [key, after[key] - before[key]]));
  counts.sql_rows_written -= counts.retention_rows_written;
  return counts;
}

const perThousand = (after, before, tasks) =>
  Object.fromEntries(
    Object.entries(delta(after, before)).map(([key, value]) => [
      key,
      Number(((value / Math.max(1, tasks)) * 1000).toFixed(1)),
    ]),
  );

const perTask = (counts, tasks) =>
  Object.fromEntries(Object.entries(counts).map(([key, value]) => [key, value / Math.max(1, tasks)]));

const queueOps = (counts) => counts.queue_writes + counts.queue_reads + counts.queue_acks + counts.queue_retries;

/** Polls the app's stats until `tasks` of its tasks are finished, for at most `ms`; returns how many are. */
async function waitFinished(system, app, tasks, ms, progress = false) {
  const t0 = Date.now();
  let done = 0;
  let lastProgress = t0;
  while (Date.now() - t0 < ms) {
    const s = await stats(system, app);
    done = s.success + s.failed;
    if (done >= tasks) break;
    if (progress && Date.now() - lastProgress >= 1_000) {
      lastProgress = Date.now();
      log(`${app}: ${done}/${tasks} finished`);
    }
    await sleep(200);
  }
  return done;
}

/**
 * Section 3, and the cost of a task: a backlog accepted while the app is paused, then delivered.
 * With `shards` > 1 (section "shards"): the same over an app spread on that many shard objects.
 */
async function drain(system, shards = 1) {
  await settle(system);
  const port = system.port;
  const name = shards > 1 ? `drain${shards}` : "drain";
  await createApp(system, name, { state: "Paused", shards });
  const host = `${name}.async.localhost:${port}`;
  const beforeAccept = await readMeters(system, [name]);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 32,
    amount: P.drainTasks,
    requests: [submitRequest(host)],
    timeout: 10,
  });
  const accepted = result["2xx"];
  const acceptSeconds = result.duration;
  const afterAccept = await readMeters(system, [name]);
  const cpu0 = cpuSeconds(system.pids());
  const t0 = Date.now();
  await call(port, `localhost:${port}`, "PATCH", `/v1/apps/${name}`, JSON.stringify({ state: "Active" }));
  let done = 0;
  let lastProgress = t0;
  while (Date.now() - t0 < 600_000) {
    const s = await stats(system, name);
    done = s.success + s.failed;
    if (done >= accepted) break;
    if (Date.now() - lastProgress >= 1_000) {
      lastProgress = Date.now();
      log(`drain: ${done}/${accepted} delivered, ${(done / ((Date.now() - t0) / 1000)).toFixed(0)} tasks/s`);
    }
    await sleep(200);
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpuUs = ((cpuSeconds(system.pids()) - cpu0) / Math.max(1, done)) * 1e6;
  // The consumer acks after the last finish: let the counters settle.
  await sleep(500);
  const afterDrain = await readMeters(system, [name]);
  const sharded = shards > 1 ? `, ${shards} shards` : "";
  row(shards > 1 ? "9 shards" : "3 drain", "asyncgate", `${system.mode}${sharded}, backlog ${accepted}`, {
    throughput: `${(done / seconds).toFixed(0)} tasks/s`,
    cpu: cpuUs.toFixed(0),
    note: `${done} delivered in ${seconds.toFixed(1)} s; accepted at ${(accepted / acceptSeconds).toFixed(0)} tasks/s (c32)`,
  });
  log(`drain${sharded}: ${done} in ${seconds.toFixed(1)} s`);

  const accept = perThousand(afterAccept, beforeAccept, accepted);
  const deliver = perThousand(afterDrain, afterAccept, done);
  const describe = (counts) =>
    `DO requests ${counts.do_requests}, queue ops ${(counts.queue_writes + counts.queue_reads + counts.queue_acks + counts.queue_retries).toFixed(1)} (write ${counts.queue_writes}, read ${counts.queue_reads}, ack ${counts.queue_acks}, retry ${counts.queue_retries}), SQLite rows read ${counts.sql_rows_read} / written ${counts.sql_rows_written}, Worker invocations ${counts.worker_invocations}`;
  costRows.push(() => {
    row("6 cost", "asyncgate", `${system.mode}${sharded}, per 1000 tasks accepted`, { note: describe(accept) });
    row("6 cost", "asyncgate", `${system.mode}${sharded}, per 1000 tasks delivered`, { note: describe(deliver) });
  });
  const perTask = Object.fromEntries(Object.keys(accept).map((key) => [key, (accept[key] + deliver[key]) / 1000]));
  if (shards > 1) {
    shapes[`load_${shards}_shards`] = {
      setting: `load over ${shards} shards: a backlog of ${accepted} drained`,
      tasks: done,
      perTask,
      cpuUs,
      // Each shard object is billed for the whole drain (all are busy throughout): shards × the time.
      objectSeconds: shards / Math.max(1, done / seconds),
    };
    return;
  }
  perThousandLoad = { accept, deliver };
  // The load shape. CPU: what the drain measured per delivered task (the accept side is in the
  // ingest rows); the object busy for the whole drain.
  shapes.load = {
    setting: `load: a backlog of ${accepted} drained`,
    tasks: done,
    perTask: Object.fromEntries(Object.keys(accept).map((key) => [key, (accept[key] + deliver[key]) / 1000])),
    cpuUs,
    objectSeconds: 1 / Math.max(1, done / seconds),
  };
}

/**
 * The traffic shapes measured (load, steady, trickle): meters per task, CPU µs per task, and the
 * seconds the app's object is billed for per task. Priced at the end, once retention is measured.
 */
const shapes = {};
/** The drain's meters per 1000 tasks accepted and delivered. */
let perThousandLoad = null;
/** Rows of section "6 cost" that sections leave for the end (the table keeps them together). */
const costRows = [];
/** What retention's deletes wrote, from the retention section (null: not run). */
let retentionResult = null;
/** What a task costs, priced at the end (for --json). */
let costs = null;

/**
 * The steady shape: about P.steadyRate tasks a second for P.steadySeconds, submitted to an active
 * app; the meters from before the first submit until every task is finished.
 */
async function steady(system) {
  await settle(system);
  const port = system.port;
  await createApp(system, "steady");
  const host = `steady.async.localhost:${port}`;
  const total = P.steadyRate * P.steadySeconds;
  const before = await readMeters(system, ["steady"]);
  const cpu0 = cpuSeconds(system.pids());
  const t0 = Date.now();
  const inFlight = new Set();
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < total; i++) {
    const wait = t0 + (i * 1000) / P.steadyRate - Date.now();
    if (wait > 0) await sleep(wait);
    // A slow gateway must not pile up requests without end: at most 64 open at once.
    if (inFlight.size >= 64) await Promise.race(inFlight);
    const sent = call(port, host, "POST", "/steady", BODY)
      .then(
        (response) => (response.status < 300 ? accepted++ : refused++),
        () => refused++,
      )
      .finally(() => inFlight.delete(sent));
    inFlight.add(sent);
  }
  await Promise.all(inFlight);
  const submitSeconds = (Date.now() - t0) / 1000;
  const done = await waitFinished(system, "steady", accepted, 120_000, true);
  const seconds = (Date.now() - t0) / 1000;
  const cpuUs = ((cpuSeconds(system.pids()) - cpu0) / Math.max(1, done)) * 1e6;
  await sleep(500); // the consumer acks after the last finish
  const after = await readMeters(system, ["steady"]);
  log(
    `steady: ${accepted} accepted in ${submitSeconds.toFixed(1)} s (${(accepted / submitSeconds).toFixed(0)}/s), ${done} finished after ${seconds.toFixed(1)} s${refused ? `, ${refused} refused` : ""}`,
  );
  shapes.steady = {
    setting: `steady: ${P.steadyRate} tasks/s for ${P.steadySeconds} s to an active app${quick ? " (quick run; the full run: 30 s)" : ""}`,
    tasks: done,
    seconds: P.steadySeconds,
    note: `${accepted} accepted at ${(accepted / submitSeconds).toFixed(0)}/s, ${done} finished ${seconds.toFixed(1)} s after the first submit${refused ? `, ${refused} refused` : ""}`,
    perTask: perTask(delta(after, before), done),
    cpuUs,
    // Busy throughout: the window over the tasks (an upper bound).
    objectSeconds: seconds / Math.max(1, done),
  };
}

/**
 * The trickle shape: P.trickleTasks tasks one at a time, each submitted a second after the previous
 * one once the origin has it (waiting 5 s at most), to an active app; the meters from before the
 * first submit until every task is finished. Deliveries are watched at the origin, not by polling
 * the gateway: over a few tasks its own requests would weigh in the meters (the one meters read
 * that closes the window is measured and taken out).
 */
async function trickle(system) {
  await settle(system);
  const port = system.port;
  await createApp(system, "trickle");
  const host = `trickle.async.localhost:${port}`;
  let scanned = ORIGIN.received.length;
  const seenAt = new Map();
  const scan = () => {
    for (; scanned < ORIGIN.received.length; scanned++) {
      const r = ORIGIN.received[scanned];
      const id = r.headers["asyncgate-task-id"];
      if (id !== undefined && !seenAt.has(id)) seenAt.set(id, r.at);
    }
  };
  const before = await readMeters(system, ["trickle"]);
  const cpu0 = cpuSeconds(system.pids());
  const t0 = Date.now();
  const toOrigin = [];
  let accepted = 0;
  for (let i = 0; i < P.trickleTasks; i++) {
    const sent = Date.now();
    const response = await call(port, host, "POST", "/trickle", BODY);
    if (response.status < 300) {
      accepted++;
      const id = response.json().id;
      while (!seenAt.has(id) && Date.now() - sent < 5_000) {
        await sleep(5);
        scan();
      }
      if (seenAt.has(id)) toOrigin.push(seenAt.get(id) - sent);
    }
    const rest = sent + 1_000 - Date.now();
    if (i < P.trickleTasks - 1 && rest > 0) await sleep(rest);
  }
  // The last result is reported at once (nothing else runs): half a second is plenty, checked below.
  await sleep(500);
  const seconds = (Date.now() - t0) / 1000;
  const cpuUs = ((cpuSeconds(system.pids()) - cpu0) / Math.max(1, accepted)) * 1e6;
  let after = await readMeters(system, ["trickle"]);
  // What one meters read costs (a Worker invocation and an object request), to take it out.
  let readCost = delta(await readMeters(system, ["trickle"]), after);
  const finished = await stats(system, "trickle");
  let done = finished.success + finished.failed;
  let polled = "";
  if (done < accepted) {
    done = await waitFinished(system, "trickle", accepted, 30_000);
    after = await readMeters(system, ["trickle"]);
    readCost = delta(await readMeters(system, ["trickle"]), after);
    polled = "; the last tasks finished late: stats polls are in the meters";
  }
  const counts = delta(after, before);
  for (const key of Object.keys(counts)) counts[key] = Math.max(0, counts[key] - readCost[key]);
  const meanToOrigin = toOrigin.reduce((sum, ms) => sum + ms, 0) / Math.max(1, toOrigin.length);
  log(
    `trickle: ${done}/${accepted} finished in ${seconds.toFixed(1)} s, submit → origin ${meanToOrigin.toFixed(0)} ms mean`,
  );
  shapes.trickle = {
    setting: `trickle: ${P.trickleTasks} tasks one at a time, a second apart, to an active app${quick ? " (quick run; the full run: 60)" : ""}`,
    tasks: done,
    note: `${done}/${accepted} finished in ${seconds.toFixed(1)} s; submit → origin ${meanToOrigin.toFixed(0)} ms mean; one meters read (${readCost.worker_invocations} Worker invocation, ${readCost.do_requests} object request) taken out${polled}`,
    perTask: perTask(counts, done),
    cpuUs,
    // Idle between tasks, the object can hibernate and is not billed: busy from submit to the origin.
    objectSeconds: meanToOrigin / 1000,
  };
}

/**
 * Retention, first half (early in the run): an active app that keeps tasks 60 s gets
 * P.retentionTasks tasks and finishes them. Its object's alarm deletes them a minute later.
 */
async function retentionStart(system) {
  await createApp(system, "retention", { retention: 60, retry: { max_attempts: 3, max_backoff: 10 } });
  const host = `retention.async.localhost:${system.port}`;
  const before = await readMeters(system, ["retention"]);
  const result = await autocannon({
    url: `http://127.0.0.1:${system.port}`,
    connections: 8,
    amount: P.retentionTasks,
    requests: [submitRequest(host)],
    timeout: 10,
  });
  const done = await waitFinished(system, "retention", result["2xx"], 60_000);
  log(`retention: ${done}/${result["2xx"]} tasks finished; retention (60 s) removes them a minute from now`);
  return { before, tasks: done, finishedAt: Date.now() };
}

/**
 * Retention, second half (at the end of the run): the rows retention's deletes wrote per task
 * removed (GET /v1/meters: retention_rows_written, retention_tasks; only retention touches them).
 * Waits for the deletes until 90 s past the moment they are due at most.
 */
async function retentionEnd(system, start) {
  const t0 = Date.now();
  const deadline = Math.max(t0, start.finishedAt + 60_000) + 90_000;
  let removed = 0;
  let rows = 0;
  let lastProgress = t0;
  while (true) {
    const after = await readMeters(system, ["retention"]);
    removed = after.retention_tasks - start.before.retention_tasks;
    rows = after.retention_rows_written - start.before.retention_rows_written;
    if (removed >= start.tasks || Date.now() >= deadline) break;
    if (Date.now() - lastProgress >= 10_000) {
      lastProgress = Date.now();
      log(
        `retention: ${removed}/${start.tasks} removed, waiting (at most ${((deadline - Date.now()) / 1000).toFixed(0)} s more)`,
      );
    }
    await sleep(2_000);
  }
  const measured = removed > 0;
  retentionResult = {
    measured,
    rowsPerTask: measured ? rows / removed : 1,
    tasks: removed,
    rows,
    finished: start.tasks,
    waitedSeconds: (Date.now() - t0) / 1000,
    afterFinishSeconds: (Date.now() - start.finishedAt) / 1000,
  };
  log(
    measured
      ? `retention: ${removed} tasks removed, ${rows} rows written (${(rows / removed).toFixed(2)} per task)`
      : `retention: nothing removed ${retentionResult.afterFinishSeconds.toFixed(0)} s after the tasks finished; pricing 1 row per task`,
  );
}

/** Prices every shape measured, all-in, and writes section "6 cost" (rows and the JSON `cost`). */
function priceCosts() {
  for (const add of costRows) add();
  const retention = retentionResult ?? { measured: false, rowsPerTask: 1, tasks: 0, rows: 0 };
  const retentionNote = retentionResult
    ? retention.measured
      ? `measured: ${retention.tasks}/${retention.finished} tasks of an app with retention 60 s removed, ${retention.rows} rows written (read ${retention.afterFinishSeconds.toFixed(0)} s after the tasks finished)`
      : `not measured: nothing removed ${retention.afterFinishSeconds.toFixed(0)} s after ${retention.finished} tasks finished; 1 row per task assumed`
    : "not measured (section retention not run): 1 row per task assumed";
  if (retentionResult || Object.keys(shapes).length) {
    row("6 cost", "asyncgate", "retention, per 1000 tasks removed", {
      note: `SQLite rows written ${(retention.rowsPerTask * 1000).toFixed(1)}; ${retentionNote}`,
    });
  }
  const priced = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const price = allInPerMillion(shape.perTask, shape.cpuUs, shape.objectSeconds, retention.rowsPerTask);
    priced[name] = { shape, price };
  }
  const assumptions = `storage ${ASSUMPTIONS.task_bytes / 1024} KB a task × ${ASSUMPTIONS.retention_days} days at $${ASSUMPTIONS.storage_usd_per_gb_month.toFixed(2)}/GB-month`;
  const load = priced.load;
  if (load) {
    const dominant = Object.entries(load.price.parts)
      .sort(([, a], [, b]) => b - a)
      .slice(0, 3)
      .map(([name, usd]) => `${name} $${usd.toFixed(2)}`);
    row("6 cost", "asyncgate", "list price per million delivered tasks", {
      throughput: `$${load.price.asyncgate.toFixed(2)}`,
      note: `all-in at ${PRICES.asOf} list prices (bench/prices.mjs), the load shape: retention rows $${load.price.parts.retention_rows_written.toFixed(2)}, ${assumptions} $${load.price.parts.storage.toFixed(2)}; most: ${dominant.join(", ")}; QStash $${load.price.qstash.toFixed(2)}, Cloud Tasks $${load.price.cloud_tasks.toFixed(2)} (stores no results); target ≤ $4`,
    });
  }
  const json = {};
  for (const [name, { shape, price }] of Object.entries(priced)) {
    const counts = shape.perTask;
    json[name] = {
      per_million_usd: Number(price.asyncgate.toFixed(3)),
      rows_written_per_task: Number((counts.sql_rows_written + retention.rowsPerTask).toFixed(2)),
      queue_ops_per_task: Number(queueOps(counts).toFixed(3)),
      do_requests_per_task: Number(counts.do_requests.toFixed(3)),
      tasks: shape.tasks,
      ...(shape.seconds ? { seconds: shape.seconds } : {}),
    };
    row("6 cost", "asyncgate", `shape ${shape.setting}, per million tasks`, {
      throughput: `$${price.asyncgate.toFixed(2)}`,
      note: `all-in; per task: SQLite rows written ${json[name].rows_written_per_task} (retention's ${retention.rowsPerTask.toFixed(2)} included), queue ops ${json[name].queue_ops_per_task}, DO requests ${json[name].do_requests_per_task}, Worker invocations ${counts.worker_invocations.toFixed(3)}, CPU ${shape.cpuUs.toFixed(0)} µs${shape.note ? `; ${shape.note}` : ""}`,
    });
  }
  if (!load && !retentionResult && !Object.keys(shapes).length) return;
  costs = {
    ...(perThousandLoad ? { per_1000_tasks: perThousandLoad } : {}),
    ...(load
      ? {
          per_million_usd: {
            asyncgate: json.load.per_million_usd,
            qstash: load.price.qstash,
            cloud_tasks: load.price.cloud_tasks,
          },
          parts_usd: load.price.parts,
        }
      : {}),
    assumptions: ASSUMPTIONS,
    retention_measured: retention.measured,
    retention_rows_per_task: Number(retention.rowsPerTask.toFixed(3)),
    retention_tasks_measured: retention.tasks,
    shapes: json,
  };
}

/**
 * 1,000 idle subscribers heartbeating every 10 s: the gateway's feed, and the bare Worker holding
 * the same sockets the same way (hibernatable, auto-response) as the runtime's own floor.
 */
async function subscribers(system, bare) {
  const baseline = bare ? await holdSockets(bare, (port) => new WebSocket(`ws://127.0.0.1:${port}/ws`)) : null;
  if (baseline) {
    row("4 subscribers", "bare worker", `${bare.mode}, ${baseline.open} idle, OK every 10 s`, {
      throughput: `+${baseline.rssMb.toFixed(1)} MB RSS`,
      cpu: baseline.cpuPerBeat.toFixed(0),
      note: `CPU µs per heartbeat; one Durable Object holding the sockets with the Hibernation API, nothing else`,
    });
  }
  const port = system.port;
  await createApp(system, "subs", { max_subscribers: P.subscribers });
  const rss0 = rssMb(system.workerdPids());
  const sockets = [];
  const arrivals = [];
  for (let i = 0; i < P.subscribers; i++) {
    const ws = subscriber(port, "subs");
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith("{") && text.includes('"seq"') && !text.includes('"hello"')) arrivals.push(Date.now());
    });
    sockets.push(new Promise((resolve, reject) => ws.once("open", () => resolve(ws)).once("error", reject)));
  }
  const open = await Promise.all(sockets);
  // Heartbeat every 10 s, staggered, from now on.
  const timers = open.map((ws, i) => {
    const beat = () => ws.readyState === WebSocket.OPEN && ws.send("OK");
    const start = setTimeout(
      () => {
        beat();
        timers[i] = setInterval(beat, 10_000);
      },
      (i * 10_000) / open.length,
    );
    return start;
  });
  // Steady state: every socket has sent its first heartbeat and connecting is over (3 s was not
  // enough: the tail of 1000 connects landed in the window and was counted as heartbeat CPU).
  await sleep(12_000);
  const rss1 = rssMb(system.workerdPids());
  const cpu0 = cpuSeconds(system.workerdPids());
  await sleep(10_000);
  const cpuPerBeat = ((cpuSeconds(system.workerdPids()) - cpu0) / open.length) * 1e6;
  const rss2 = rssMb(system.workerdPids()); // the object has hibernated by now: heartbeats never woke it
  const t0 = Date.now();
  await call(port, `subs.async.localhost:${port}`, "POST", "/fan", "{}");
  while (arrivals.length < open.length && Date.now() - t0 < 30_000) await sleep(5);
  const fanOut = arrivals.length ? Math.max(...arrivals) - t0 : NaN;
  const stillOpen = open.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  for (const timer of timers) (clearInterval(timer), clearTimeout(timer));
  for (const ws of open) ws.close();
  row("4 subscribers", "asyncgate", `${system.mode}, ${open.length} idle, OK every 10 s`, {
    throughput: `+${(rss1 - rss0).toFixed(1)} MB RSS`,
    cpu: cpuPerBeat.toFixed(0),
    note: `CPU µs per heartbeat; workerd RSS ${rss0.toFixed(0)} → ${rss1.toFixed(0)} MB (${rss2.toFixed(0)} MB after 10 s idle); one result reached ${arrivals.length}/${open.length} in ${fanOut} ms (submit → last); ${stillOpen} still open${
      baseline ? `; ${((rss1 - rss0) / baseline.rssMb).toFixed(2)}× the bare Worker's RSS (target ≤ 1.2)` : ""
    }`,
  });
  log(`subscribers: +${(rss1 - rss0).toFixed(1)} MB, fan-out ${fanOut} ms`);
  return { rssMb: rss1 - rss0, fanOut, bareRssMb: baseline?.rssMb ?? null };
}

/** Opens P.subscribers sockets on `system`, heartbeats them into steady state, measures, closes them. */
async function holdSockets(system, open) {
  const rss0 = rssMb(system.workerdPids());
  const sockets = await Promise.all(
    Array.from({ length: P.subscribers }, () => {
      const ws = open(system.port);
      return new Promise((resolve, reject) => ws.once("open", () => resolve(ws)).once("error", reject));
    }),
  );
  const timers = sockets.map((ws, i) =>
    setTimeout(
      () => {
        const beat = () => ws.readyState === WebSocket.OPEN && ws.send("OK");
        beat();
        timers[i] = setInterval(beat, 10_000);
      },
      (i * 10_000) / sockets.length,
    ),
  );
  await sleep(12_000);
  const rss1 = rssMb(system.workerdPids());
  const cpu0 = cpuSeconds(system.workerdPids());
  await sleep(10_000);
  const cpuPerBeat = ((cpuSeconds(system.workerdPids()) - cpu0) / sockets.length) * 1e6;
  for (const timer of timers) (clearInterval(timer), clearTimeout(timer));
  for (const ws of sockets) ws.close();
  log(`subscribers (bare worker): +${(rss1 - rss0).toFixed(1)} MB`);
  return { rssMb: rss1 - rss0, cpuPerBeat, open: sockets.length };
}

async function scale(system) {
  const results = [];
  for (const apps of [1, 4, 16]) {
    const names = Array.from({ length: apps }, (_, i) => `scale${apps}-${i}`);
    for (const name of names) await createApp(system, name, { state: "Paused" });
    const requests = names.map((name) => submitRequest(`${name}.async.localhost:${system.port}`));
    const cpu0 = cpuSeconds(system.pids());
    const result = await load(system.port, requests, 64, P.scaleSeconds);
    const cpuUs = ((cpuSeconds(system.pids()) - cpu0) / Math.max(1, result.ok)) * 1e6;
    results.push(result.rps);
    row("5 scale", "asyncgate", `${system.mode}, c64, ${apps} app${apps > 1 ? "s" : ""}`, {
      throughput: `${result.rps.toFixed(0)} req/s`,
      p50: result.p50,
      p99: result.p99,
      cpu: cpuUs.toFixed(0),
      note: `${(result.rps / results[0]).toFixed(2)}× one app${result.errors ? `, ${result.errors} errors` : ""}`,
    });
    log(`scale ${apps}: ${result.rps.toFixed(0)} req/s`);
  }
}

/** The figures as one document: `{machine, rows: [{section, system, setting, rps?, …}], cost}`. */
function toJson(header) {
  const number = (text, unit) => {
    const match = new RegExp(`([\\d.]+) ${unit}`).exec(text ?? "");
    return match ? Number(match[1]) : undefined;
  };
  const clean = (object) =>
    Object.fromEntries(
      Object.entries(object).filter(([, value]) => value !== undefined && value !== "" && !Number.isNaN(value)),
    );
  return {
    machine: header.split("\n")[2],
    rows: rows
      .filter((r) => !r.section.endsWith("cost"))
      .map((r) =>
        clean({
          section: r.section.replace(/^\d+ /, ""),
          system: r.system,
          setting: r.setting,
          rps: number(r.throughput, "req/s"),
          tasks_per_s: number(r.throughput, "tasks/s"),
          p50_ms: r.p50 === undefined ? undefined : Number(r.p50),
          p99_ms: r.p99 === undefined ? undefined : Number(r.p99),
          cpu_us_per_task: r.cpu === undefined ? undefined : Number(r.cpu),
          rss_mb: number(r.throughput, "MB RSS"),
        }),
      ),
    cost: costs,
  };
}

// ---- main ---------------------------------------------------------------------------------------

const ORIGIN = await startOrigin({ quiet: true });
const vars = { ADMIN_ACCESS_KEY: KEYS.accessKey, ADMIN_SECRET_KEY: KEYS.secretKey, ALLOW_PRIVATE_ORIGINS: "true" };
const systems = [];
const stopAll = async () => {
  for (const system of systems) await system.stop().catch(() => {});
  await ORIGIN.close();
};
process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
process.once("uncaughtException", (error) => {
  console.error(error);
  void stopAll().finally(() => process.exit(1));
});

try {
  log(`starting systems (${quick ? "quick" : "full"} run)`);
  systems.push(await startWranglerDev("bare worker", "bench/bare.wrangler.toml"));
  const bareDirect = await startDirect("bare worker", "bare");
  systems.push(bareDirect);
  const gatewayDev = await startWranglerDev("asyncgate", "wrangler.toml", vars);
  const gatewayDirect = await startDirect("asyncgate", "asyncgate", vars);
  // The same, with the console's static assets and so the local asset router in front (ingest only).
  const gatewayAssets = await startDirect("asyncgate", "asyncgate", vars, {}, { withAssets: true });
  systems.push(gatewayDev, gatewayDirect, gatewayAssets);
  for (const system of [gatewayDev, gatewayDirect, gatewayAssets]) {
    system.createApp = (name) => createApp(system, name);
    system.pauseApp = (name) =>
      call(system.port, `localhost:${system.port}`, "PATCH", `/v1/apps/${name}`, JSON.stringify({ state: "Paused" }));
  }
  let bullmqNote = null;
  if (redisAvailable()) {
    const peer = await startBullmq(ORIGIN.url);
    peer.appHost = `bench.async.localhost:${peer.port}`;
    systems.push(peer);
  } else {
    bullmqNote = "redis-server is not installed: the Node + BullMQ row is skipped (sudo apt-get install redis-server)";
    log(bullmqNote);
  }

  // Retention's tasks first: they age out (60 s) while the other sections run.
  const retentionStarted = enabled("retention") ? await retentionStart(gatewayDirect) : null;
  const summary = enabled("ingest") ? await ingest(systems) : null;
  await gatewayAssets.stop();
  if (enabled("latency")) await latency(gatewayDirect);
  if (enabled("drain")) await drain(gatewayDirect);
  if (enabled("steady")) await steady(gatewayDirect);
  if (enabled("trickle")) await trickle(gatewayDirect);
  const subs = enabled("subscribers") ? await subscribers(gatewayDirect, bareDirect) : null;
  if (enabled("scale")) await scale(gatewayDirect);
  if (enabled("shards")) await drain(gatewayDirect, 4);
  if (retentionStarted) await retentionEnd(gatewayDirect, retentionStarted);
  priceCosts();

  // ---- the table and the targets ----
  const cell = (value) => (value === undefined || value === null || Number.isNaN(value) ? "" : String(value));
  const table = [
    "| section | system | setting | throughput / result | p50 ms | p99 ms | CPU µs per task | notes |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${r.section} | ${r.system} | ${r.setting} | ${cell(r.throughput)} | ${cell(r.p50)} | ${cell(r.p99)} | ${cell(r.cpu)} | ${cell(r.note)} |`,
    ),
  ].join("\n");
  const gw = summary?.get("asyncgate|workerd direct|64");
  const bare = summary?.get("bare worker|workerd direct|64");
  const light = rows.find((r) => r.setting.startsWith("workerd direct, light: submit → subscriber"));
  const targets = [
    gw && `- ingest at c64, workerd direct: ${(gw.rps / bare.rps).toFixed(2)}× the bare Worker (target ≥ 0.5)`,
    gw && `- p99 at c64: ${(gw.p99 / Math.max(1, bare.p99)).toFixed(2)}× the bare Worker's (target ≤ 2)`,
    gw && `- CPU per accepted task: ${(gw.cpuUs / bare.cpuUs).toFixed(2)}× the bare Worker's (target ≤ 2)`,
    light && `- submit → subscriber p50 at light load: ${light.p50} ms (target ≤ 20)`,
    subs &&
      `- 1,000 idle subscribers: +${subs.rssMb.toFixed(1)} MB workerd RSS${subs.bareRssMb ? `, ${(subs.rssMb / subs.bareRssMb).toFixed(2)}× the bare Worker's +${subs.bareRssMb.toFixed(1)} MB (target ≤ 1.2×)` : ""}`,
  ].filter(Boolean);
  const versions = {
    node: process.version,
    wrangler: JSON.parse(readFileSync("node_modules/wrangler/package.json", "utf8")).version,
    workerd: JSON.parse(readFileSync("node_modules/workerd/package.json", "utf8")).version,
    redis: redisAvailable()
      ? execFileSync("redis-server", ["--version"], { encoding: "utf8" }).trim().split(" ")[2]
      : "absent",
    bullmq: JSON.parse(readFileSync("node_modules/bullmq/package.json", "utf8")).version,
  };
  const header = [
    `# asyncgate benchmark (${quick ? "quick" : "full"})`,
    "",
    `${new Date().toISOString()} · ${cpus().length} × ${cpus()[0]?.model ?? "cpu"} · ${(totalmem() / 2 ** 30).toFixed(0)} GiB · ` +
      Object.entries(versions)
        .map(([name, version]) => `${name} ${version}`)
        .join(" · "),
    "",
    `Ingest: signed 1 KiB JSON POSTs (${LOADER}), ${P.rounds} interleaved rounds of ${P.ingestSeconds} s per system and concurrency, medians; CPU is the server processes' (workerd, plus wrangler's proxy under wrangler dev; node + redis for the peer) per accepted request.`,
    "",
  ].join("\n");
  const output = `${header}${table}\n\nTargets (workerd direct):\n${targets.join("\n")}\n${bullmqNote ? `\n${bullmqNote}\n` : ""}\nTook ${((Date.now() - started) / 1000).toFixed(0)} s.\n`;
  writeFileSync("bench/results/latest.md", output);
  if (asJson) console.log(JSON.stringify(toJson(header), null, 2));
  else console.log(output);
} finally {
  await stopAll();
}
