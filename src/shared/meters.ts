/**
 * What a task costs, counted where it is spent (cheap counters, no I/O): requests to Durable
 * Objects, queue operations, SQLite rows read and written, Worker invocations. Each isolate
 * counts its own; `GET /v1/meters` (admin) adds the Worker's isolate to the objects' of the apps
 * asked for. Locally everything runs in one process, which makes the sum exact: the benchmark
 * reads it before and after a section to price a task (bench/prices.mjs).
 */
export interface CostMeters {
  /** Requests that reached a Durable Object: RPCs, fetches (feed upgrades), alarms. */
  do_requests: number;
  sql_rows_read: number;
  sql_rows_written: number;
  /** Messages written to a queue (one billed operation each). */
  queue_writes: number;
  /** Messages a consumer received (one billed read each). */
  queue_reads: number;
  /** Messages acknowledged (one billed delete each) or retried (billed as a further read later). */
  queue_acks: number;
  queue_retries: number;
  /** fetch and queue handler invocations of the Worker. */
  worker_invocations: number;
  /** Rows written by retention (deleting or dropping finished tasks): part of sql_rows_written. */
  retention_rows_written: number;
  /** Tasks retention removed: with the rows above, what retention costs per task. */
  retention_tasks: number;
}

export const emptyMeters = (): CostMeters => ({
  do_requests: 0,
  sql_rows_read: 0,
  sql_rows_written: 0,
  queue_writes: 0,
  queue_reads: 0,
  queue_acks: 0,
  queue_retries: 0,
  worker_invocations: 0,
  retention_rows_written: 0,
  retention_tasks: 0,
});

/** This isolate's counters. */
export const meters: CostMeters = emptyMeters();

export function addMeters(into: CostMeters, from: CostMeters): CostMeters {
  for (const key of Object.keys(into) as (keyof CostMeters)[]) into[key] += from[key];
  return into;
}

/** This isolate's identity (made on first use: no random values at global scope in Workers). */
let isolateId: string | null = null;

export interface MeterSnapshot {
  isolate: string;
  meters: CostMeters;
}

/** This isolate's counters, tagged with its identity: snapshots of one isolate (a Worker and its objects, locally) are summed once. */
export const snapshot = (): MeterSnapshot => ({ isolate: (isolateId ??= crypto.randomUUID()), meters: { ...meters } });

/** The sum over distinct isolates. */
export function sumSnapshots(snapshots: MeterSnapshot[]): CostMeters {
  const seen = new Map<string, CostMeters>();
  for (const item of snapshots) seen.set(item.isolate, item.meters);
  return [...seen.values()].reduce((sum, item) => addMeters(sum, item), emptyMeters());
}

/**
 * Counts every call of a Durable Object class's public methods (its RPCs, fetch and alarm) as
 * one request, by wrapping them on the prototype once, at module load: no stub is touched.
 */
export function meterRequests(objectClass: { prototype: object }, exclude: string[] = []): void {
  const prototype = objectClass.prototype;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    if (name === "constructor" || exclude.includes(name) || !descriptor || typeof descriptor.value !== "function")
      continue;
    const method = descriptor.value as (...args: unknown[]) => unknown;
    Object.defineProperty(prototype, name, {
      ...descriptor,
      value: function (this: unknown, ...args: unknown[]) {
        meters.do_requests++;
        return method.apply(this, args);
      },
    });
  }
}

/**
 * A SqlStorage whose statements' rows read and written are added to {@link meters}. A cursor's
 * counts grow as it is consumed, so they are summed when settled: at the next snapshot, or once
 * enough cursors are pending (every statement here is consumed within its synchronous turn).
 */
export function meteredSql(sql: SqlStorage): { sql: SqlStorage; settle(): void } {
  let pending: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  const settle = () => {
    for (const cursor of pending) {
      meters.sql_rows_read += cursor.rowsRead;
      meters.sql_rows_written += cursor.rowsWritten;
    }
    pending = [];
  };
  // The stores use exec only.
  const exec = ((query: string, ...bindings: unknown[]) => {
    const cursor = sql.exec(query, ...bindings);
    pending.push(cursor);
    if (pending.length > 512) settle();
    return cursor;
  }) as SqlStorage["exec"];
  return { sql: { exec } as unknown as SqlStorage, settle };
}
