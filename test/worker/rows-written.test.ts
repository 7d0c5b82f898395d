// Proves what a task costs in SQLite rows written: 1 to accept (2 when parked), none to send or begin, 1 to finish, at most 2.5 in all per delivered task before retention.
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/app/store";
import { newTaskId } from "../../src/shared/task-id";
import { CONTROL, call, createApp, metered, newTask, sql, submit, uniqueApp, waitForState } from "./helpers";

describe("rows written", () => {
  it("a delivered task writes 1 row to be accepted, none to be sent or to begin, and 1 to finish (each index entry written is a billed row)", async () => {
    const app = uniqueApp("rows");
    await createApp(app);
    const written = await sql(app)((storage) => {
      const meter = metered(storage);
      const store = openStore(meter.sql).tasks;
      // Counters and the seq are written once per group commit: left out here, as a group does.
      store.openCountBatch();
      const step = (run: () => void) => {
        meter.reset();
        run();
        return meter.rowsWritten();
      };
      const id = newTaskId(1, Date.now());
      const now = Date.now();
      const outcome = { status: 200, header: {}, body: new Uint8Array(100) };
      const rows = {
        // The row alone (keyed by its id: WITHOUT ROWID; the outbox finds it by that key).
        accept: step(() => store.insert(newTask(id, now))),
        // Nothing: which tasks have a message out is kept in memory.
        send: step(() => store.markDispatched([id], now)),
        // Nothing: running attempts are kept in memory.
        begin: step(() => store.markDoing(id, 1, now, now + 60_000)),
        // The row with the attempt's record and its seq (one write; the results log is written
        // with the counts' checkpoint, a row per checkpoint).
        finish: step(() =>
          store.markFinished(id, 1, 10, now, undefined, { atMs: now, outcome, error: null, retryReason: null }),
        ),
      };
      store.closeCountBatch();
      store.commitCountBatch();
      return rows;
    });
    expect(written).toEqual({ accept: 1, send: 0, begin: 0, finish: 1 });
  });

  it("a task submitted to an active app and delivered writes at most 2.5 rows in all, counters and seqs included", async () => {
    const app = uniqueApp("allin");
    await createApp(app);
    const meters = async () =>
      ((await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }).meters;
    const before = await meters();
    const ids = await Promise.all(Array.from({ length: 60 }, (_, i) => submit(app, `/allin/${i}`, { body: "{}" })));
    for (const id of ids) await waitForState(id, [10]);
    const after = await meters();
    const perTask = (after["sql_rows_written"]! - before["sql_rows_written"]!) / ids.length;
    // 1 to accept, none to send or begin, 1 to finish; the rest is per group commit (the counts'
    // checkpoint and the results log's row). Retention's delete comes later (retention.test.ts).
    expect(perTask).toBeGreaterThanOrEqual(2);
    expect(perTask).toBeLessThanOrEqual(2.5);
  });
});
