// Proves the delivery state machine is idempotent under at-least-once, unordered queue delivery,
// and that leases, cancel, retry, retention, the outbox, eviction and a failed finish RPC lose nothing.
import { env } from "cloudflare:workers";
import {
  createExecutionContext,
  createMessageBatch,
  evictDurableObject,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import entry from "../../src/index";
import type { AppQueue } from "../../src/app/app-queue";
import type { TestAppQueue } from "./test-app-queue";
import { DISPATCH_WINDOW } from "../../src/app/outbox";
import { appQueue } from "../../src/app/stubs";
import { consumeTasks } from "../../src/delivery/consumer";
import { TASKS_PER_MESSAGE, type AttemptReport, type AttemptResult } from "../../src/shared/types";
import {
  CONTROL,
  call,
  createApp,
  finishParked,
  getTask,
  lingered,
  makeDue,
  parkedTask,
  received,
  sql,
  submit,
  submitInput,
  uniqueApp,
  waitForState,
} from "./helpers";

/** The Worker as the runtime sees it: messages of any shape may arrive. */
const worker = entry as ExportedHandler<Env, unknown> & { queue: NonNullable<ExportedHandler<Env, unknown>["queue"]> };

const ok200: AttemptResult = { kind: "response", status: 200, header: {}, body: new TextEncoder().encode("done") };
const err500: AttemptResult = { kind: "response", status: 500, header: {}, body: new Uint8Array() };

async function row(app: string, id: string): Promise<Record<string, SqlStorageValue> | undefined> {
  return runInDurableObject(
    appQueue(env, app),
    (_instance: AppQueue, state) => state.storage.sql.exec("SELECT * FROM tasks WHERE id = ?", id).toArray()[0],
  );
}

describe("begin / finish", () => {
  const app = uniqueApp("sm");

  it("a duplicate message never re-runs a running or finished task", async () => {
    await createApp(app, { retry: { min_backoff: 60, max_backoff: 60 } });
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    const first = await stub.begin(id);
    expect(first.run && first.delivery.attempt).toBe(1);
    expect(await stub.begin(id)).toEqual({ run: false, reason: "running" });
    expect(await stub.finish(id, 1, ok200)).toEqual({ applied: true, state: 10 });
    expect(await stub.finish(id, 1, ok200)).toEqual({ applied: false, state: 10 });
    expect(await stub.begin(id)).toEqual({ run: false, reason: "finished" });
    const task = await getTask(id);
    expect(task.attempts).toBe(1);
    expect(task.state).toBe(10);
  });

  it("a finish that arrives before its begin, or for an old attempt, is ignored", async () => {
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    expect(await stub.finish(id, 1, ok200)).toEqual({ applied: false, state: 0 });
    const first = await stub.begin(id);
    expect(first.run).toBe(true);
    expect(await stub.finish(id, 1, err500)).toEqual({ applied: true, state: 0 });
    // Backoff of 60 s: a duplicate message now is early.
    expect(await stub.begin(id)).toEqual({ run: false, reason: "not_due" });
    await makeDue(app, id);
    const second = await stub.begin(id);
    expect(second.run && second.delivery.attempt).toBe(2);
    expect(second.run && second.delivery.previousStatus).toBe(500);
    expect(await stub.finish(id, 1, ok200)).toEqual({ applied: false, state: 1 });
    expect(await stub.finish(id, 2, ok200)).toEqual({ applied: true, state: 10 });
    expect((await getTask(id)).attempts).toBe(2);
  });

  it("an attempt whose consumer vanished counts as a timeout once its lease runs out", async () => {
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    expect((await stub.begin(id)).run).toBe(true);
    expect(await runInDurableObject(stub, (instance: TestAppQueue) => instance.expireLease(id))).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const task = await getTask(id);
    expect(task.state).toBe(0);
    expect(task.error).toBe("timeout");
    expect(task.attempts).toBe(1);
  });
});

describe("queue consumer", () => {
  it("runs a task once for duplicate messages in one batch and acks them all", async () => {
    const app = uniqueApp("qc");
    await createApp(app);
    const id = await parkedTask(app, "/batch");
    const body = { app, id };
    const batch = createMessageBatch<unknown>("asyncgate-tasks", [
      { id: "m1", timestamp: new Date(), attempts: 1, body },
      { id: "m2", timestamp: new Date(), attempts: 1, body },
      { id: "m3", timestamp: new Date(), attempts: 1, body: { not: "a task" } },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["m1", "m2", "m3"]);
    expect(result.retryMessages).toEqual([]);
    expect((await getTask(id)).state).toBe(10);
    expect((await received(id)).length).toBe(1);
  });

  it("runs every task of a several-task message once, across apps, repeated ids and unknown ones; acks each message once", async () => {
    const [first, second] = [uniqueApp("qm"), uniqueApp("qm")];
    await createApp(first);
    await createApp(second);
    const a = [await parkedTask(first, "/m1"), await parkedTask(first, "/m2"), await parkedTask(first, "/m3")];
    const b = await parkedTask(second, "/m4");
    const batch = createMessageBatch<unknown>("asyncgate-tasks", [
      // A repeated id and an unknown one inside a message; the same task again in another message.
      {
        id: "many",
        timestamp: new Date(),
        attempts: 1,
        body: { app: first, id: a[0], more: [a[1], a[2], a[1], "0".repeat(32)] },
      },
      { id: "again", timestamp: new Date(), attempts: 1, body: { app: first, id: a[2] } },
      { id: "other", timestamp: new Date(), attempts: 1, body: { app: second, id: b } },
      // Over the limit of tasks per message: malformed, acked, nothing run.
      {
        id: "toolong",
        timestamp: new Date(),
        attempts: 1,
        body: { app: second, id: b, more: Array.from({ length: 10 }, () => b) },
      },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["again", "many", "other", "toolong"]);
    expect(result.retryMessages).toEqual([]);
    for (const id of [...a, b]) {
      expect((await getTask(id)).state).toBe(10);
      expect((await received(id)).length).toBe(1);
    }
  });

  it("the outbox packs due tasks into messages of up to 10 (three queue operations each, not per task)", async () => {
    const app = uniqueApp("pack");
    await createApp(app, { state: "Paused" });
    for (let i = 0; i < 25; i++) await submit(app, `/p${i}`, { body: "{}" });
    const before = (
      (await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }
    ).meters;
    expect(
      (await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ state: "Active" }) })).status,
    ).toBe(200);
    const after = (
      (await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }
    ).meters;
    // Resuming sends the 25 waiting tasks at once: three messages (10 + 10 + 5).
    expect(after["queue_writes"]! - before["queue_writes"]!).toBe(3);
  });

  it("acks messages for deleted apps and unknown tasks", async () => {
    const batch = createMessageBatch<unknown>("asyncgate-tasks", [
      { id: "gone", timestamp: new Date(), attempts: 1, body: { app: uniqueApp("never"), id: "0".repeat(32) } },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["gone"]);
  });

  it("a finish RPC that fails is tried again by the consumer: the origin's answer is not lost", async () => {
    const app = uniqueApp("frpc");
    await createApp(app);
    const id = await parkedTask(app);
    let failures = 0;
    const flakyEnv = {
      ...env,
      APP_QUEUE: {
        idFromName: (name: string) => env.APP_QUEUE.idFromName(name),
        // What a consumer batch calls; the finish fails twice (the batched one, then the retry's
        // own), as an object being reset would.
        get: (objectId: DurableObjectId) => {
          const real = env.APP_QUEUE.get(objectId);
          const resetTwice = async <T>(call: () => Promise<T>): Promise<T> => {
            if (failures < 2) {
              failures++;
              throw new Error("Durable Object reset because its code was updated.");
            }
            return call();
          };
          return {
            claim: (taskIds: string[], batchSize: number) => real.claim(taskIds, batchSize),
            beginMany: (taskIds: string[]) => real.beginMany(taskIds),
            finishMany: (reports: AttemptReport[]) => resetTwice(() => real.finishMany(reports)),
            finish: (taskId: string, attempt: number, result: AttemptResult) =>
              resetTwice(() => real.finish(taskId, attempt, result)),
          };
        },
      },
    } as unknown as Env;
    const message = { id: `frpc-${id}`, timestamp: new Date(), attempts: 1, body: { app, id } };
    await consumeTasks(createMessageBatch<unknown>("asyncgate-tasks", [message]), flakyEnv);
    expect(failures).toBe(2);
    expect((await getTask(id)).state).toBe(10);
  });
});

describe("control of tasks", () => {
  const app = uniqueApp("ctl");

  it("cancels a waiting task, which then never runs", async () => {
    await createApp(app, { retry: { max_attempts: 1 } });
    const id = await submit(app, "/later", { body: "{}", headers: { "asyncgate-delay": "1h" } });
    const response = await call(`${CONTROL}/v1/task/${id}`, { method: "DELETE" });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id, state: 11, error: "canceled" });
    const again = await call(`${CONTROL}/v1/task/${id}`, { method: "DELETE" });
    expect(again.status).toBe(409);
    expect(await appQueue(env, app).begin(id)).toEqual({ run: false, reason: "finished" });
  });

  it("re-runs a failed task on POST /retry", async () => {
    const key = crypto.randomUUID();
    const id = await submit(app, `/flaky/${key}/1`, { body: "{}" });
    expect((await waitForState(id, [11])).response?.status_code).toBe(503);
    const notFailed = await call(
      `${CONTROL}/v1/task/${await submit(app, "/delayed", { body: "{}", headers: { "asyncgate-delay": "1h" } })}/retry`,
      { method: "POST" },
    );
    expect(notFailed.status).toBe(409);
    const retried = await call(`${CONTROL}/v1/task/${id}/retry`, { method: "POST" });
    expect(retried.status).toBe(200);
    const task = await waitForState(id, [10]);
    expect(task.response?.status_code).toBe(200);
    expect((await received(id)).length).toBe(2);
  });

  it("pausing holds new deliveries; resuming starts them", async () => {
    const paused = uniqueApp("pause");
    await createApp(paused);
    expect((await call(`${CONTROL}/v1/apps/${paused}`, { method: "PATCH", body: '{"state":"Paused"}' })).status).toBe(
      200,
    );
    const id = await submit(paused, "/held", { body: "{}" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await getTask(id)).state).toBe(0);
    expect(await received(id)).toEqual([]);
    expect((await call(`${CONTROL}/v1/apps/${paused}`, { method: "PATCH", body: '{"state":"Active"}' })).status).toBe(
      200,
    );
    await waitForState(id, [10]);
  });

  it("retry of a failed task clears its seq and keeps attempt numbers growing", async () => {
    const app = uniqueApp("retry");
    await createApp(app, { retry: { max_attempts: 1 } });
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    expect(await stub.finish(id, 1, err500)).toEqual({ applied: true, state: 11 });
    // Paused, the retried task waits: it must not be a result while it does.
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Paused"}' });
    expect((await call(`${CONTROL}/v1/task/${id}/retry`, { method: "POST" })).status).toBe(200);
    const seq = await sql(app)(
      (storage) => storage.exec<{ seq: number | null }>("SELECT seq FROM tasks WHERE id = ?", id).one().seq,
    );
    expect(seq).toBeNull();
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Active"}' });
    const done = await waitForState(id, [10]);
    expect(done.attempts).toBe(2);
    // A stale finish of attempt 1 cannot touch the task again.
    expect((await stub.finish(id, 1, err500)).applied).toBe(false);
  });
});

describe("retention", () => {
  it("the alarm removes finished tasks and expires unfinished ones past retention", async () => {
    const app = uniqueApp("ret");
    await createApp(app, { retention: 60 });
    const stub = appQueue(env, app);
    const finished = await finishParked(app);
    // As if it finished 61 s ago: its partition is sealed and dropped (its newest result is past retention).
    const old = Date.now() - 61_000;
    await runInDurableObject(stub, (instance: TestAppQueue, state) => {
      state.storage.sql.exec("UPDATE tasks SET finished_ms = ? WHERE id = ?", old, finished);
      instance.resetCaches();
      return state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(stub); // or the runtime ran it already: it was due at once
    await vi.waitUntil(async () => (await call(`${CONTROL}/v1/task/${finished}`)).status === 404, { timeout: 5_000 });
    // As if created 61 s ago (a task id starts with its creation time, so the id ages too): it expires.
    const submitted = await submit(app, "/far", { body: "{}", headers: { "asyncgate-delay": "30s" } });
    const waiting = old.toString(16).padStart(12, "0") + submitted.slice(12);
    await runInDurableObject(stub, (instance: TestAppQueue, state) => {
      state.storage.sql.exec("UPDATE tasks SET id = ?, created_ms = ? WHERE id = ?", waiting, old, submitted);
      instance.resetCaches();
      return state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(stub); // or the runtime ran it already: it was due at once
    expect(await waitForState(waiting, [11])).toMatchObject({ state: 11, error: "expired" });
  });
});

describe("outbox", () => {
  it("a failed queue send leaves the task in the outbox; the alarm sends it", async () => {
    const app = uniqueApp("obx");
    await createApp(app);
    const stub = appQueue(env, app);
    const id = await runInDurableObject(stub, async (instance: AppQueue) => {
      const bindings = Reflect.get(instance, "env") as Env;
      const queue = bindings.TASKS;
      const unavailable = async () => {
        throw new Error("queue unavailable");
      };
      bindings.TASKS = { send: unavailable, sendBatch: unavailable } as unknown as Queue;
      try {
        const result = await instance.submit(submitInput("/outbox"));
        if (!result.ok) throw new Error(result.error.message);
        await lingered(); // a lone task's message waits a moment for company before it is sent
        return result.value.id;
      } finally {
        bindings.TASKS = queue;
      }
    });
    expect(await runInDurableObject(stub, (instance: TestAppQueue) => instance.sentAt(id))).toBeNull();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await waitForState(id, [10]);
    expect((await received(id)).length).toBe(1);
  });

  it("a message sent but lost is sent again after the re-dispatch interval", async () => {
    const app = uniqueApp("lost");
    await createApp(app);
    const stub = appQueue(env, app);
    const id = await parkedTask(app, "/lost");
    await runInDurableObject(stub, (instance: TestAppQueue) => instance.markSent(id, Date.now() - 10 * 60_000));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await waitForState(id, [10]);
  });
});

describe("dispatch window", () => {
  it("keeps the backlog in the object and at most DISPATCH_WINDOW messages in the queue, and delivers it all, refilling the window in full messages", async () => {
    const app = uniqueApp("window");
    await createApp(app, { state: "Paused" });
    const stub = appQueue(env, app);
    const backlog = DISPATCH_WINDOW + 150;
    await Promise.all(Array.from({ length: backlog }, (_, i) => stub.submit(submitInput(`/w/${i}`))));
    const queueWrites = async () =>
      ((await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }).meters[
        "queue_writes"
      ]!;
    const writesBefore = await queueWrites();
    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: '{"state":"Active"}' })).status).toBe(200);
    // Messages out that no attempt has begun from (a running task's row keeps its mark).
    const inFlight = () => runInDurableObject(stub, (instance: TestAppQueue) => instance.inFlight());
    let most = 0;
    await vi.waitUntil(
      async () => {
        most = Math.max(most, await inFlight());
        const stats = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: { success: number } };
        return stats.stats.success === backlog;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(DISPATCH_WINDOW);
    // The window is refilled a message's worth at a time: 65 messages would carry all 650 tasks;
    // slot by slot, the 150 behind the window would have taken up to 150 more.
    expect((await queueWrites()) - writesBefore).toBeLessThanOrEqual(Math.ceil(backlog / TASKS_PER_MESSAGE) + 10);
  }, 40_000);
});

describe("eviction", () => {
  it("evicting the object mid-attempt loses nothing", async () => {
    const app = uniqueApp("evict");
    await createApp(app);
    const stub = appQueue(env, app);
    const id = await submit(app, "/sleep/800", { body: "{}" });
    await waitForState(id, [1]);
    await evictDurableObject(stub);
    const task = await waitForState(id, [10]);
    expect(task.attempts).toBe(1);
    expect((await received(id)).length).toBe(1);
  });

  it("a delayed task survives eviction and runs when due", async () => {
    const app = uniqueApp("evict2");
    await createApp(app);
    const stub = appQueue(env, app);
    const id = await submit(app, "/after-evict", { body: "{}", headers: { "asyncgate-delay": "1s" } });
    await evictDurableObject(stub);
    expect((await getTask(id)).state).toBe(0);
    await waitForState(id, [10]);
  });
});

describe("batched begin / finish", () => {
  const meter = async (app: string) =>
    ((await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }).meters;
  const messages = (app: string, ids: string[], prefix: string) =>
    ids.map((id, i) => ({ id: `${prefix}${i}`, timestamp: new Date(), attempts: 1, body: { app, id } }));
  const consume = async (batchMessages: Parameters<typeof createMessageBatch<unknown>>[1]) => {
    const batch = createMessageBatch<unknown>("asyncgate-tasks", batchMessages);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    return getQueueResult(batch, ctx);
  };

  it("beginMany and finishMany keep each item's guarantees: duplicates, stale and early finishes, finished tasks", async () => {
    const app = uniqueApp("many");
    await createApp(app, { retry: { min_backoff: 60, max_backoff: 60 } });
    const stub = appQueue(env, app);
    const [a, b, c] = [await parkedTask(app), await parkedTask(app), await parkedTask(app)];
    // c's finish arrives before its begin: ignored, in the same batch as real ones.
    expect(await stub.finishMany([{ taskId: c, attempt: 1, result: ok200 }])).toEqual([{ applied: false, state: 0 }]);
    const begun = await stub.beginMany([a, b, a, "0".repeat(32)]);
    expect(begun.map((result) => (result.run ? `run ${result.delivery.attempt}` : result.reason))).toEqual([
      "run 1",
      "run 1",
      "running",
      "task_not_found",
    ]);
    const finished = await stub.finishMany([
      { taskId: a, attempt: 1, result: ok200 },
      { taskId: b, attempt: 1, result: err500 },
      // The same report twice, and one for an attempt that is not running.
      { taskId: a, attempt: 1, result: ok200 },
      { taskId: b, attempt: 2, result: ok200 },
    ]);
    expect(finished).toEqual([
      { applied: true, state: 10 },
      { applied: true, state: 0 },
      { applied: false, state: 10 },
      { applied: false, state: 0 },
    ]);
    // a is finished, b waits out its backoff, c was never begun: a second batch runs only c.
    const again = await stub.beginMany([a, b, c]);
    expect(again.map((result) => (result.run ? `run ${result.delivery.attempt}` : result.reason))).toEqual([
      "finished",
      "not_due",
      "run 1",
    ]);
    // b's attempt 1 reported late, after its retry began: not counted twice.
    await makeDue(app, b);
    const retried = await stub.beginMany([b]);
    expect(retried[0]!.run && retried[0]!.delivery.attempt).toBe(2);
    expect(
      await stub.finishMany([
        { taskId: b, attempt: 1, result: ok200 },
        { taskId: c, attempt: 1, result: ok200 },
        { taskId: b, attempt: 2, result: ok200 },
      ]),
    ).toEqual([
      { applied: false, state: 1 },
      { applied: true, state: 10 },
      { applied: true, state: 10 },
    ]);
    expect((await getTask(a)).attempts).toBe(1);
    expect((await getTask(b)).attempts).toBe(2);
  });

  it("the same tasks in two batches consumed at once run once each; every message is acked", async () => {
    const app = uniqueApp("twice");
    await createApp(app);
    const ids: string[] = [];
    for (let i = 0; i < 14; i++) ids.push(await parkedTask(app, `/sleep/${20 + (i % 3) * 10}`));
    // Overlapping batches, one in reverse order: duplicates across batches and out of order.
    const [first, second] = await Promise.all([
      consume(messages(app, ids, "x")),
      consume(messages(app, [...ids].reverse(), "y")),
    ]);
    expect(first.explicitAcks.length + second.explicitAcks.length).toBe(28);
    expect([...first.retryMessages, ...second.retryMessages]).toEqual([]);
    for (const id of ids) {
      const task = await getTask(id);
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 10, attempts: 1 });
      expect((await received(id)).length).toBe(1);
    }
    // A batch of the finished tasks again runs nothing.
    const late = await consume(messages(app, ids.slice(0, 3), "z"));
    expect(late.explicitAcks.sort()).toEqual(["z0", "z1", "z2"]);
    for (const id of ids.slice(0, 3)) expect((await received(id)).length).toBe(1);
  });

  it("a batch that mixes apps makes a few calls per app, not two per task", async () => {
    const apps = [uniqueApp("mix"), uniqueApp("mix"), uniqueApp("mix")];
    const ids = new Map<string, string[]>();
    for (const app of apps) {
      await createApp(app);
      const mine: string[] = [];
      for (let i = 0; i < 12; i++) mine.push(await parkedTask(app, `/mix/${i}`));
      ids.set(app, mine);
    }
    // The meters are the isolate's (every object of this test file runs in it): the batch's total.
    const before = await meter(apps[0]!);
    // Interleaved: app 0, app 1, app 2, app 0, …
    const interleaved = Array.from({ length: 12 }, (_, i) =>
      apps.map((app) => ({ app, id: ids.get(app)![i]! })),
    ).flat();
    const result = await consume(
      interleaved.map(({ app, id }, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body: { app, id } })),
    );
    expect(result.explicitAcks.length).toBe(36);
    expect(result.retryMessages).toEqual([]);
    const requests = (await meter(apps[0]!))["do_requests"]! - before["do_requests"]!;
    for (const app of apps) {
      for (const id of ids.get(app)!) {
        expect((await getTask(id)).state).toBe(10);
        expect((await received(id)).length).toBe(1);
      }
    }
    // A claim per app, then batched begins and finishes: fewer object requests than the 75 that
    // a claim per app plus a begin and a finish per task would take.
    expect(requests).toBeGreaterThanOrEqual(3 + 2 * 3);
    expect(requests).toBeLessThan(3 + 2 * 36);
  });

  it("evicting the object while a batch's attempts run loses no result and runs nothing twice", async () => {
    const app = uniqueApp("evictb");
    await createApp(app);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await parkedTask(app, `/sleep/150?i=${i}`));
    const consumed = consume(messages(app, ids, "e"));
    // Mid-batch: the first attempts are running, their finishes not yet reported.
    await vi.waitFor(async () => expect((await getTask(ids[0]!)).state).toBe(1), { timeout: 2000, interval: 20 });
    await evictDurableObject(appQueue(env, app));
    const result = await consumed;
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks.length).toBe(12);
    for (const id of ids) {
      const task = await getTask(id);
      expect({ state: task.state, attempts: task.attempts }).toEqual({ state: 10, attempts: 1 });
      expect((await received(id)).length).toBe(1);
    }
  });
});
