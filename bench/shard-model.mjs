// One app spread over shards (issue 25), as a model: its sustained submit and delivery rates, an
// accept p99, its storage ceiling and its all-in cost for 1–64 shards and 1–4 queues, from what
// one object cost on this machine (the bench's measured figures), Cloudflare's per-object and
// per-queue limits, and the calls the sharded design adds. Pure arithmetic: no network, no timing
// of its own. These are model figures, not a measured sharded run.
//
//   node bench/shard-model.mjs          the tables (Markdown)
//   node bench/shard-model.mjs --json   the figures
import { pathToFileURL } from "node:url";
import { ASSUMPTIONS, PRICES, allInPerMillion } from "./prices.mjs";

const DAY = 86_400;
const HOUR = 3_600;

/**
 * What one app's object did on this machine (2 cores, workerd on its own port; see
 * docs/performance.md for the runs). Locally the Worker, the object, Miniflare's queue broker,
 * the consumer and the origin share workerd's one thread, so times per task are upper bounds of
 * the object's own.
 */
export const MEASURED = {
  /**
   * ms of the thread per accepted task: 1 / 1,679 tasks/s, bench/results/latest.md "5 scale",
   * 1 app at c64 with the app paused (no delivery beside it), at the group-commit sizes of that
   * load. The Worker and its RPC are in it.
   */
  acceptMs: 1000 / 1679,
  /**
   * ms of the thread per delivered task: 1 / 504 tasks/s, the drain of a 10,000-task backlog on
   * the final code (docs/performance.md, the full run of the cost sections; latest.md's older
   * code drained 757/s). The consumer, the queue broker and the origin are in it.
   */
  deliverMs: 1000 / 504,
  /** Object requests per accepted task: one RPC (latest.md "6 cost": 1000.2 per 1000). */
  acceptRequests: 1.0,
  /**
   * Object requests per delivered task at a shard's delivery rate (tasks/s): the bench's three
   * shapes less the accept's 1.0 (docs/performance.md): trickle 4 at 1/s, steady 2.0 at 100/s,
   * load 1.76 at 504/s (begins and finishes in batches, a claim per consumer batch, alarms).
   */
  deliverRequestsByRate: [
    [1, 3.0],
    [100, 1.0],
    [504, 0.76],
  ],
  /**
   * Tasks per queue message at a shard's rate: 3 operations per message ÷ queue operations per
   * task in the same shapes: trickle 3 (1 task), steady 0.98 (3.06), load 0.39 (7.7).
   */
  tasksPerMessageByRate: [
    [1, 1],
    [100, 3 / 0.98],
    [504, 3 / 0.39],
  ],
  /**
   * SQLite rows written per delivered task before retention: accept 1, finish 1, checkpoints
   * ~0.005 (the load shape's 2.03 less retention's 0.025; test/worker/rows-written.test.ts).
   */
  rowsWrittenPerTask: 2.03 - 0.025,
  /** Rows retention writes per task: 0.025 (25 for 1,000 removed, partitions dropped whole). */
  retentionRowsPerTask: 0.025,
  /** Rows read per delivered task: 6.0 (docs/performance.md, "What a task costs"). */
  rowsReadPerTask: 6.0,
  /** Worker invocations per task: the submit's 1.0001 and the consumer's 0.0088 (latest.md "6 cost"). */
  workerInvocationsPerTask: 1.0001 + 0.0088,
  /** CPU µs per delivered task, workerd's, as the bench prices Worker CPU (latest.md "3 drain"). */
  cpuUsPerTask: 1228,
  /** The load shape's all-in price, the final code's full run (docs/performance.md): the check on the cost model. */
  loadUsdPerMillion: 2.94,
  /** Submit → origin p50 at light load, ms (latest.md "2 end-to-end"): a task's time in flight before its origin. */
  submitToOriginMs: 15,
};

/** Cloudflare's limits (/work/shared/PLATFORM.md, "Limits that bound one app"; durable-objects and queues platform/limits). */
export const LIMITS = {
  /** Soft limit per object; beyond it "overloaded" errors (the docs' table: 200–500/s for writing requests). */
  objectRequestsPerSecond: 1000,
  /** SQLite storage per object (GB = 10⁹ bytes, as Cloudflare bills). */
  objectBytes: 10e9,
  /** Messages per second per queue. */
  queueMessagesPerSecond: 5000,
  /** Messages per sendBatch: the outbox's batches; a queue operation is billed per message, so this binds nothing here. */
  sendBatchMessages: 100,
  /** Concurrent consumer invocations per queue. */
  consumerInvocations: 250,
  /** Simultaneous outgoing connections of one consumer invocation (the consumer runs 6 attempts at once). */
  consumerConnections: 6,
};

/** The code's own bounds (src/shared/types.ts TASKS_PER_MESSAGE, src/app/outbox.ts DISPATCH_WINDOW). */
export const CODE = {
  /** Tasks one queue message may carry; the bench's messages carried at most 7.7 (MEASURED). */
  tasksPerMessageMax: 10,
  /** Tasks in flight per object (a shard keeps its own window). */
  dispatchWindow: 500,
};

/** What the sharded design adds per task (issue 25; the shards work under way in main). */
export const DESIGN = {
  /** The Worker's per-isolate route cache: one call to the home per isolate per this many seconds. */
  routeCacheSeconds: 10,
  /** Opening a shard, per shard per partition: one home call and one configure write (a call to the shard and its row). */
  openHomeRequests: 1,
  openShardRequests: 1,
  openRowsWritten: 1,
  /** The home's rows per report: one UPDATE of the shard's reported seq (as the shards work under way writes it). */
  homeRowsPerReport: 1,
  /** Partition length for the rates and the cost (the default `partition`). */
  partitionSeconds: DAY,
  /** Queues a shard sends to: shard k to queue k mod Q, so at most min(Q, shards) are used. */
  queuesUsed: (queues, shards) => Math.min(queues, shards),
};

/** Not measured anywhere in the bench: assumptions, each named in the output. */
export const ASSUMED = {
  /**
   * Results per home report. One home request per shard commit that holds finishes; the bench
   * counts no group-commit sizes, so: a commit holds one finishMany, and finishMany calls are half
   * of the load shape's 0.76 delivery requests per task → 2 / 0.76 ≈ 2.6 results per report.
   */
  reportBatch: 2 / 0.76,
  /** Submissions per second one Worker isolate serves (traffic spread over many edge machines): sets the route lookups. */
  isolateRequestsPerSecond: 20,
  /** Origin time to first byte, ms: how long a consumer connection is held per task. */
  originMs: 100,
};

export const INPUTS = { measured: MEASURED, limits: LIMITS, code: CODE, design: DESIGN, assumed: ASSUMED };

/** INPUTS with some figures replaced: `withInputs({ assumed: { reportBatch: 25 } })`. */
export function withInputs(changes, base = INPUTS) {
  const out = { ...base };
  for (const [group, values] of Object.entries(changes)) out[group] = { ...base[group], ...values };
  return out;
}

/** A figure measured at a few rates, at `rate`: linear in log(rate) between them, held flat beyond. */
export function atRate(points, rate) {
  const first = points[0];
  const last = points[points.length - 1];
  if (rate <= first[0]) return first[1];
  if (rate >= last[0]) return last[1];
  let i = 1;
  while (rate > points[i][0]) i++;
  const [r0, v0] = points[i - 1];
  const [r1, v1] = points[i];
  return v0 + ((v1 - v0) * Math.log(rate / r0)) / Math.log(r1 / r0);
}

/** Accepts per second one object takes: the lower of its request limit and the measured time per accept. */
export function acceptCapacity(inputs = INPUTS) {
  const { measured: m, limits: l } = inputs;
  return Math.min(l.objectRequestsPerSecond / m.acceptRequests, 1000 / m.acceptMs);
}

/**
 * Every limit at an app rate of `rate` tasks/s: `{ limit, load, capacity }`. Modes: "submit"
 * (accepting only: a paused app, or a backlog growing), "deliver" (a backlog drained), "both"
 * (accepted and delivered at the same rate: steady traffic, what an app sustains). `sharded:
 * false` is today's one object: no home, no partitions, one queue.
 */
export function limitsAt(rate, { shards, queues, mode, sharded = true }, inputs = INPUTS) {
  const { measured: m, limits: l, code, design: d, assumed: a } = inputs;
  const accepts = mode !== "deliver";
  const delivers = mode !== "submit";
  const x = rate / shards;
  const opens = sharded ? 1 / d.partitionSeconds : 0;
  const queuesUsed = sharded ? d.queuesUsed(queues, shards) : 1;
  const out = [
    {
      limit: "shard requests",
      load:
        (accepts ? x * m.acceptRequests : 0) +
        (delivers ? x * atRate(m.deliverRequestsByRate, x) : 0) +
        opens * d.openShardRequests,
      capacity: l.objectRequestsPerSecond,
    },
    {
      limit: "shard time",
      load: (accepts ? x * m.acceptMs : 0) + (delivers ? x * m.deliverMs : 0),
      capacity: 1000,
    },
    {
      limit: "queue messages",
      load: rate / atRate(m.tasksPerMessageByRate, x),
      capacity: queuesUsed * l.queueMessagesPerSecond,
    },
  ];
  if (delivers) {
    out.push(
      {
        limit: "shard window",
        load: (x * (a.originMs + m.submitToOriginMs)) / 1000,
        capacity: code.dispatchWindow,
      },
      {
        limit: "queue consumers",
        load: (rate * a.originMs) / 1000,
        capacity: queuesUsed * l.consumerInvocations * l.consumerConnections,
      },
    );
  }
  if (sharded) {
    out.push({
      limit: "home requests",
      load:
        (accepts ? rate / (a.isolateRequestsPerSecond * d.routeCacheSeconds) : 0) +
        (delivers ? rate / a.reportBatch : 0) +
        shards * opens * d.openHomeRequests,
      capacity: l.objectRequestsPerSecond,
    });
  }
  return out;
}

const worst = (limits) => limits.reduce((a, b) => (b.load / b.capacity > a.load / a.capacity ? b : a));

/**
 * The highest app rate (tasks/s) at which no limit is exceeded, and the limit that binds there.
 * Every load grows with the rate, so a bisection finds it.
 */
export function sustained(options, inputs = INPUTS) {
  let low = 0;
  let high = 1e7;
  for (let i = 0; i < 80; i++) {
    const middle = (low + high) / 2;
    const limit = worst(limitsAt(middle, options, inputs));
    if (limit.load <= limit.capacity) low = middle;
    else high = middle;
  }
  return { rate: low, binding: worst(limitsAt(low, options, inputs)).limit };
}

/**
 * Accept p99 (ms) in one shard offered `perShardRate` accepts/s, as an M/M/1 queue: time in the
 * object (waiting and served) is exponential with rate μ − λ, so p99 = ln(100) / (μ − λ). μ is the
 * object's accept capacity in the model (a request holds it 1/μ s). The Worker, the network and
 * the commit's wait for durability are not in it.
 */
export function acceptP99Ms(perShardRate, inputs = INPUTS) {
  const mu = acceptCapacity(inputs);
  return perShardRate >= mu ? Infinity : (Math.log(100) / (mu - perShardRate)) * 1000;
}

/** Tasks/s the storage holds: a partition's shards fill N × 10 GB over `partitionSeconds`, whatever the retention. */
export function storageCeiling(shards, partitionSeconds, inputs = INPUTS) {
  return (shards * inputs.limits.objectBytes) / (ASSUMPTIONS.task_bytes * partitionSeconds);
}

/** Tasks/s one unpartitioned object holds, every task kept `retentionDays` (today's one object). */
export function oneObjectStorageCeiling(retentionDays, inputs = INPUTS) {
  return inputs.limits.objectBytes / (ASSUMPTIONS.task_bytes * retentionDays * DAY);
}

/**
 * The all-in list price of a million delivered tasks at an app rate of `rate` tasks/s (steady:
 * every object of the live partition, and the home, busy throughout), priced by bench/prices.mjs
 * like the bench's shapes: rows, requests, queue operations, Worker requests and CPU, duration,
 * retention's rows and 7 days of storage; sharded, also half a partition's storage (a partition
 * is dropped once its newest task is past retention), the reports, route lookups and shard opens.
 */
export function costPerMillion(rate, { shards, sharded = true }, inputs = INPUTS) {
  const { measured: m, design: d, assumed: a } = inputs;
  const x = rate / shards;
  const messagesPerTask = 1 / atRate(m.tasksPerMessageByRate, x);
  const opensPerTask = sharded ? shards / (d.partitionSeconds * rate) : 0;
  const reportsPerTask = sharded ? 1 / a.reportBatch : 0;
  const perTask = {
    worker_invocations: m.workerInvocationsPerTask,
    do_requests:
      m.acceptRequests +
      atRate(m.deliverRequestsByRate, x) +
      reportsPerTask +
      (sharded ? 1 / (a.isolateRequestsPerSecond * d.routeCacheSeconds) : 0) +
      opensPerTask * (d.openHomeRequests + d.openShardRequests),
    sql_rows_read: m.rowsReadPerTask,
    sql_rows_written: m.rowsWrittenPerTask + reportsPerTask * d.homeRowsPerReport + opensPerTask * d.openRowsWritten,
    queue_writes: messagesPerTask,
    queue_reads: messagesPerTask,
    queue_acks: messagesPerTask,
    queue_retries: 0,
  };
  const objectSeconds = (sharded ? shards + 1 : 1) / rate;
  const price = allInPerMillion(perTask, m.cpuUsPerTask, objectSeconds, m.retentionRowsPerTask);
  const parts = { ...price.parts };
  if (sharded)
    parts.storage_partition_tail = (parts.storage * (d.partitionSeconds / 2 / DAY)) / ASSUMPTIONS.retention_days;
  return { usd: Object.values(parts).reduce((sum, value) => sum + value, 0), parts, perTask };
}

export const SHARDS = [1, 2, 4, 8, 16, 32, 64];
export const QUEUES = [1, 2, 4];

/** One row of the table: `shards` shards (sharded: false, today's one object) and `queues` queues. */
export function modelRow(shards, queues, { sharded = true } = {}, inputs = INPUTS) {
  const options = { shards, queues, sharded };
  const submit = sustained({ ...options, mode: "submit" }, inputs);
  const deliver = sustained({ ...options, mode: "deliver" }, inputs);
  const both = sustained({ ...options, mode: "both" }, inputs);
  return {
    shards,
    queues: sharded ? queues : 1,
    sharded,
    submit,
    deliver,
    both,
    accept_p99_ms: {
      at_50: acceptP99Ms((0.5 * submit.rate) / shards, inputs),
      at_80: acceptP99Ms((0.8 * submit.rate) / shards, inputs),
    },
    storage_tasks_per_s: sharded
      ? { partition_1h: storageCeiling(shards, HOUR, inputs), partition_1d: storageCeiling(shards, DAY, inputs) }
      : { retention_7d: oneObjectStorageCeiling(7, inputs), retention_1d: oneObjectStorageCeiling(1, inputs) },
    usd_per_million: costPerMillion(both.rate, options, inputs).usd,
  };
}

/** Today's one object draining a backlog at the measured rate, priced: what the bench's load shape measured. */
export function loadShapeCheck(inputs = INPUTS) {
  const rate = 1000 / inputs.measured.deliverMs;
  return {
    rate,
    model_usd: costPerMillion(rate, { shards: 1, sharded: false }, inputs).usd,
    measured_usd: inputs.measured.loadUsdPerMillion,
  };
}

/** What a few changed inputs do to 64 shards with 1 and 4 queues (steady traffic, "both"). */
export const SENSITIVITY = [
  { change: "the table's inputs", inputs: {} },
  { change: "home reports of 10 results", inputs: { assumed: { reportBatch: 10 } } },
  { change: "home reports of 25 results", inputs: { assumed: { reportBatch: 25 } } },
  { change: "home reports of 50 results", inputs: { assumed: { reportBatch: 50 } } },
  { change: "objects' soft limit 500 req/s", inputs: { limits: { objectRequestsPerSecond: 500 } } },
  { change: "origin 1 s to first byte", inputs: { assumed: { originMs: 1000 } } },
  {
    change: "origin 1 s, home reports of 50",
    inputs: { assumed: { originMs: 1000, reportBatch: 50 } },
  },
];

/** The results per home report that let 64 shards' own limits bind (steady traffic, 4 queues). */
export function reportBatchNeeded(shards = 64, queues = 4, inputs = INPUTS) {
  const free = sustained({ shards, queues, mode: "both" }, withInputs({ assumed: { reportBatch: Infinity } }, inputs));
  const { limits: l, design: d, assumed: a } = inputs;
  const spare =
    l.objectRequestsPerSecond -
    free.rate / (a.isolateRequestsPerSecond * d.routeCacheSeconds) -
    (shards * d.openHomeRequests) / d.partitionSeconds;
  return { rate: free.rate, binding: free.binding, results_per_report: free.rate / spare };
}

/** Everything the tables show, as numbers. */
export function model(inputs = INPUTS) {
  return {
    today: modelRow(1, 1, { sharded: false }, inputs),
    rows: SHARDS.flatMap((shards) => QUEUES.map((queues) => modelRow(shards, queues, {}, inputs))),
    sensitivity: SENSITIVITY.map(({ change, inputs: changes }) => {
      const changed = withInputs(changes, inputs);
      return {
        change,
        q1: sustained({ shards: 64, queues: 1, mode: "both" }, changed),
        q4: sustained({ shards: 64, queues: 4, mode: "both" }, changed),
      };
    }),
    report_batch_needed: reportBatchNeeded(64, 4, inputs),
    load_shape_check: loadShapeCheck(inputs),
  };
}

const rate = (n) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1));
const ms = (n) => (Number.isFinite(n) ? n.toFixed(1) : "∞");

/** The Markdown tables and what is measured and assumed. */
export function render(result, inputs = INPUTS) {
  const { today, rows, sensitivity, report_batch_needed: needed, load_shape_check: check } = result;
  const { assumed: a } = inputs;
  const lines = [
    "| shards | queues | submit tasks/s (binds) | delivery tasks/s (binds) | both at once tasks/s (binds) | accept p99 ms at 50 % / 80 % | storage ceiling tasks/s, P = 1 h / 1 d | $ per M delivered |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  const cells = (row) =>
    `${rate(row.submit.rate)} (${row.submit.binding}) | ${rate(row.deliver.rate)} (${row.deliver.binding}) | ${rate(row.both.rate)} (${row.both.binding}) | ${ms(row.accept_p99_ms.at_50)} / ${ms(row.accept_p99_ms.at_80)}`;
  lines.push(
    `| 1, today's one object | 1 | ${cells(today)} | ${rate(today.storage_tasks_per_s.retention_7d)} / ${rate(today.storage_tasks_per_s.retention_1d)} (retention 7 d / 1 d) | ${today.usd_per_million.toFixed(2)} |`,
  );
  for (const row of rows) {
    lines.push(
      `| ${row.shards} | ${row.queues} | ${cells(row)} | ${rate(row.storage_tasks_per_s.partition_1h)} / ${rate(row.storage_tasks_per_s.partition_1d)} | ${row.usd_per_million.toFixed(2)} |`,
    );
  }
  lines.push(
    "",
    "| 64 shards, steady traffic (both at once) | 1 queue | 4 queues |",
    "| --- | --- | --- |",
    ...sensitivity.map(
      (s) => `| ${s.change} | ${rate(s.q1.rate)} (${s.q1.binding}) | ${rate(s.q4.rate)} (${s.q4.binding}) |`,
    ),
    "",
    `Model figures, not a measured sharded run. Rates are what the app sustains with no limit exceeded; "both at once" is steady traffic (every task accepted and delivered in the same objects). p99: the object's queue as M/M/1 at 50 % and 80 % of the row's submit rate (service rate ${rate(acceptCapacity(inputs))} accepts/s); the Worker, network and commit are not in it. The Worker has no per-app limit: its one load on a single object is the route lookups, counted in the home's requests. Storage: a partition's N objects hold 10 GB each over P seconds, whatever the retention. $: all-in at the row's "both" rate (bench/prices.mjs, ${PRICES.asOf} list prices), retention 7 days, partitions of 1 day.`,
    `Check: today's one object draining at the measured ${rate(check.rate)} tasks/s prices at $${check.model_usd.toFixed(2)} per million; the bench measured $${check.measured_usd.toFixed(2)} (load shape).`,
    `The home binds at ${a.reportBatch.toFixed(1)} results per report: for 64 shards' own limit (${rate(needed.rate)} tasks/s, ${needed.binding}) with 4 queues, a report must carry ≥ ${Math.ceil(needed.results_per_report)} results.`,
    `Assumed, not measured: ${a.reportBatch.toFixed(1)} results per home report (no group-commit sizes are counted); ${a.isolateRequestsPerSecond} submissions/s per Worker isolate (route lookups); origins answering in ${a.originMs} ms; the home's time per result (not modelled: its request count is); a shard's time per task as the whole local thread's (an upper bound); delivery requests and tasks per message between the bench's three shapes interpolated in log(rate); one row per home report and per shard opened.`,
  );
  return lines.join("\n");
}

export function main(argv = process.argv.slice(2)) {
  const result = model();
  if (argv.includes("--json")) {
    const { design, ...rest } = INPUTS;
    console.log(
      JSON.stringify({ inputs: { ...rest, design: { ...design, queuesUsed: "min(Q, shards)" } }, ...result }, null, 2),
    );
  } else console.log(render(result));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main();
