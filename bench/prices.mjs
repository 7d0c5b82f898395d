// List prices (USD) that price a task in `npm run bench`, with their sources. Figures as published
// by the vendors in November 2026; this file is the one place to update when they change.
export const PRICES = {
  asOf: "2026-11",
  workers: {
    perMillionRequests: 0.3,
    perMillionCpuMs: 0.02,
    source: "https://developers.cloudflare.com/workers/platform/pricing/ (Workers Standard)",
  },
  queues: {
    /** Each message costs a write, a read and a delete (one operation per 64 KB each). */
    perMillionOperations: 0.4,
    source: "https://developers.cloudflare.com/queues/platform/pricing/",
  },
  durableObjects: {
    perMillionRequests: 0.15,
    perMillionGbSeconds: 12.5,
    /** Memory billed per active object. */
    gbPerObject: 0.128,
    sqlRowsReadPerMillion: 0.001,
    /** Every index entry a write touches counts as a row. */
    sqlRowsWrittenPerMillion: 1.0,
    /** SQLite storage kept, per GB-month. */
    storagePerGbMonth: 0.2,
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/ (SQLite storage backend)",
  },
  qstash: {
    perMillionMessages: 10,
    source: "https://upstash.com/pricing/qstash (pay as you go: $1 per 100K messages)",
  },
  cloudTasks: {
    perMillionOperations: 0.4,
    /** Creating a task and dispatching it. */
    operationsPerTask: 2,
    source: "https://cloud.google.com/tasks/pricing ($0.40 per million billable operations after the first million)",
  },
};

/**
 * The list price of a million delivered tasks from what one task cost (counters per task, CPU
 * µs per task, and how long the app's object was busy per task).
 */
export function pricePerMillion(perTask, cpuUsPerTask, objectSecondsPerTask) {
  const million = 1e6;
  const { workers, queues, durableObjects: objects } = PRICES;
  const queueOps = perTask.queue_writes + perTask.queue_reads + perTask.queue_acks + perTask.queue_retries;
  const parts = {
    worker_requests: (perTask.worker_invocations * million * workers.perMillionRequests) / million,
    worker_cpu: ((cpuUsPerTask / 1000) * million * workers.perMillionCpuMs) / million,
    queue_operations: (queueOps * million * queues.perMillionOperations) / million,
    do_requests: (perTask.do_requests * million * objects.perMillionRequests) / million,
    do_duration: (objectSecondsPerTask * objects.gbPerObject * million * objects.perMillionGbSeconds) / million,
    sql_rows_read: (perTask.sql_rows_read * million * objects.sqlRowsReadPerMillion) / million,
    sql_rows_written: (perTask.sql_rows_written * million * objects.sqlRowsWrittenPerMillion) / million,
  };
  const total = Object.values(parts).reduce((sum, value) => sum + value, 0);
  return {
    asyncgate: total,
    parts,
    qstash: PRICES.qstash.perMillionMessages,
    cloud_tasks: PRICES.cloudTasks.perMillionOperations * PRICES.cloudTasks.operationsPerTask,
  };
}

/**
 * What the all-in price assumes beyond what the bench measures: how big a stored task is (its
 * row, body, headers, result and index entries) and how long it is kept (the default retention).
 */
export const ASSUMPTIONS = {
  task_bytes: 3072,
  retention_days: 7,
  storage_usd_per_gb_month: PRICES.durableObjects.storagePerGbMonth,
  /** Cloudflare's GB is 10^9 bytes; a month is counted as 30 days. */
  gb_bytes: 1e9,
  month_days: 30,
};

/**
 * The all-in list price of a million tasks: {@link pricePerMillion}'s parts, plus the rows
 * retention's deletes write (measured rows per task) and storage (task_bytes kept for
 * retention_days, priced per GB-month).
 */
export function allInPerMillion(perTask, cpuUsPerTask, objectSecondsPerTask, retentionRowsPerTask) {
  const base = pricePerMillion(perTask, cpuUsPerTask, objectSecondsPerTask);
  const { task_bytes, retention_days, storage_usd_per_gb_month, gb_bytes, month_days } = ASSUMPTIONS;
  const parts = {
    ...base.parts,
    retention_rows_written: retentionRowsPerTask * PRICES.durableObjects.sqlRowsWrittenPerMillion,
    storage: ((1e6 * task_bytes) / gb_bytes) * (retention_days / month_days) * storage_usd_per_gb_month,
  };
  return { ...base, asyncgate: Object.values(parts).reduce((sum, value) => sum + value, 0), parts };
}
