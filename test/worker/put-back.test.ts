// Proves an attempt that never ran to its end through no fault of the origin costs no attempt: the
// consumer's own deadline (units not begun are retried, attempts running are cut and given back),
// and a `beginMany` whose answer was lost; and that a put-back applies once, to its own run only.
import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_PUT_BACKS } from "../../src/app/state-machine";
import { appQueue } from "../../src/app/stubs";
import { consumeTasks } from "../../src/delivery/consumer";
import type { AttemptReport, AttemptResult, PutBack } from "../../src/shared/types";
import type { TestAppQueue } from "./test-app-queue";
import { createApp, getTask, parkedTask, received, uniqueApp } from "./helpers";

const ok200: AttemptResult = { kind: "response", status: 200, header: {}, body: new Uint8Array() };
const putBack = (run: string): PutBack => ({ kind: "put_back", run, reason: "deadline" });

const messages = (app: string, ids: string[], prefix: string) =>
  ids.map((id, i) => ({ id: `${prefix}${i}`, timestamp: new Date(), attempts: 1, body: { app, id } }));

async function consume(app: string, ids: string[], prefix: string, budgetMs?: number, consumerEnv: Env = env) {
  const batch = createMessageBatch<unknown>("asyncgate-tasks", messages(app, ids, prefix));
  await consumeTasks(batch, consumerEnv, budgetMs === undefined ? {} : { budgetMs });
  return getQueueResult(batch, createExecutionContext());
}

describe("put-back", () => {
  it("the consumer's deadline: attempts it cuts and units it never began cost no attempt; the next batch delivers them", async () => {
    const app = uniqueApp("cut");
    // One attempt only, and a timeout of its own far beyond the deadline: a cut counted would fail the task.
    await createApp(app, { timeout: 10, retry: { max_attempts: 1 } });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await parkedTask(app, "/sleep/1500"));
    const cut = await consume(app, ids, "c", 400);
    expect(cut.explicitAcks).toEqual([]);
    expect(cut.retryMessages.map(({ msgId }) => msgId).sort()).toEqual(ids.map((_, i) => `c${i}`).sort());
    let reached = 0;
    for (const id of ids) {
      const task = await getTask(id);
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 0, attempts: 0 });
      reached += (await received(id)).length;
    }
    // Six began (and were cut); the other two were never begun.
    expect(reached).toBe(6);
    // Given back with its message out (the consumer retries it): the outbox does not send another.
    expect(await runInDurableObject(appQueue(env, app), (instance: TestAppQueue) => instance.sentAt(ids[0]!))).not.toBe(
      null,
    );
    const again = await consume(app, ids, "d");
    expect(again.explicitAcks.length).toBe(8);
    for (const id of ids) {
      const task = await getTask(id);
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 10, attempts: 1 });
    }
  });

  it("an attempt ended by the task's own timeout before the deadline still counts", async () => {
    const app = uniqueApp("own");
    await createApp(app, { timeout: 0.3, retry: { max_attempts: 1 } });
    const id = await parkedTask(app, "/sleep/3000");
    const result = await consume(app, [id], "o", 2000);
    expect(result.explicitAcks).toEqual(["o0"]);
    const task = await getTask(id);
    expect({ state: task.state, attempts: task.attempts, error: task.error }).toEqual({
      state: 11,
      attempts: 1,
      error: "timeout",
    });
  });

  it("a beginMany whose answer is lost costs no attempt: what it began is given back, and the retried message delivers it", async () => {
    const app = uniqueApp("lost");
    await createApp(app, { retry: { max_attempts: 1 } });
    const ids = [await parkedTask(app, "/lost/0"), await parkedTask(app, "/lost/1")];
    const lossyEnv = {
      ...env,
      APP_QUEUE: {
        idFromName: (name: string) => env.APP_QUEUE.idFromName(name),
        get: (objectId: DurableObjectId) => {
          const real = env.APP_QUEUE.get(objectId);
          return {
            claim: (taskIds: string[], batchSize: number) => real.claim(taskIds, batchSize),
            // The object begins the attempts; the answer never comes back.
            beginMany: async (taskIds: string[], runs: (string | null)[]) => {
              await real.beginMany(taskIds, runs);
              throw new Error("Network connection lost.");
            },
            finishMany: (reports: AttemptReport[]) => real.finishMany(reports),
            finish: (taskId: string, attempt: number, result: AttemptResult) => real.finish(taskId, attempt, result),
          };
        },
      },
    } as unknown as Env;
    const lost = await consume(app, ids, "l", undefined, lossyEnv);
    expect(lost.retryMessages.length).toBe(2);
    for (const id of ids) {
      const task = await getTask(id);
      // Before: running until its lease ran out, then counted as a timed-out attempt (and failed).
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 0, attempts: 0 });
      expect(await received(id)).toEqual([]);
    }
    const again = await consume(app, ids, "m");
    expect(again.explicitAcks.length).toBe(2);
    for (const id of ids) {
      const task = await getTask(id);
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 10, attempts: 1 });
    }
  });

  it("a put-back applies once and only to the run it names: a duplicate or late one never gives back a newer run", async () => {
    const app = uniqueApp("runs");
    await createApp(app);
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    const [first] = await stub.beginMany([id], ["run-1"]);
    expect(first!.run && first!.delivery.attempt).toBe(1);
    expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack("run-1") }])).toEqual([
      { applied: true, state: 0 },
    ]);
    // The duplicate (a retried finishMany whose first answer was lost).
    expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack("run-1") }])).toEqual([
      { applied: false, state: 0 },
    ]);
    // The attempt's number was not used up: the next run is attempt 1 again.
    const [second] = await stub.beginMany([id], ["run-2"]);
    expect(second!.run && second!.delivery.attempt).toBe(1);
    // run-1's put-back arriving late finds another run of the same attempt number: ignored.
    expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack("run-1") }])).toEqual([
      { applied: false, state: 1 },
    ]);
    // A begin without a name (the single `begin`) is never given back.
    expect(await stub.finish(id, 1, ok200)).toEqual({ applied: true, state: 10 });
    expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack("run-2") }])).toEqual([
      { applied: false, state: 10 },
    ]);
    expect((await getTask(id)).attempts).toBe(1);
  });

  it("a task given back again and again (an origin slower than any consumer's deadline) then counts a timed-out attempt", async () => {
    const app = uniqueApp("again");
    await createApp(app, { retry: { max_attempts: 1 } });
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    for (let i = 0; i < MAX_PUT_BACKS; i++) {
      const [begun] = await stub.beginMany([id], [`cut-${i}`]);
      expect(begun!.run && begun!.delivery.attempt).toBe(1);
      expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack(`cut-${i}`) }])).toEqual([
        { applied: true, state: 0 },
      ]);
    }
    await stub.beginMany([id], ["cut-last"]);
    // Without the bound it would be given back until retention, the origin asked every 14 minutes.
    expect(await stub.finishMany([{ taskId: id, attempt: 1, result: putBack("cut-last") }])).toEqual([
      { applied: true, state: 11 },
    ]);
    const task = await getTask(id);
    expect({ state: task.state, attempts: task.attempts, error: task.error }).toEqual({
      state: 11,
      attempts: 1,
      error: "timeout",
    });
  });
});
