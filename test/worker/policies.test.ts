// Proves delivery policies inside workerd with the real origin: statuses that are never retried,
// an origin's own "do not retry", and Retry-After holding the whole app.
import { env } from "cloudflare:workers";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { BULK_BATCH } from "../../src/app/bulk";
import { openStore } from "../../src/app/store";
import { appQueue } from "../../src/app/stubs";
import { newTaskId } from "../../src/shared/task-id";
import type { TestAppQueue } from "./test-app-queue";
import { CONTROL, call, createApp, newTask, parkedTask, received, submit, uniqueApp, waitForState } from "./helpers";

describe("status rules", () => {
  it("a 404 listed in no_retry_statuses is delivered once and ends the task as 11", async () => {
    const app = uniqueApp("nrs");
    await createApp(app, { retry: { no_retry_statuses: [404], min_backoff: 0.05, max_backoff: 0.1 } });
    const id = await submit(app, "/status/404", { body: "{}" });
    const task = await waitForState(id, [11]);
    expect(task).toMatchObject({ attempts: 1, response: { status_code: 404 } });
    expect((await received(id)).length).toBe(1);
  });

  it("a 500 with Asyncgate-No-Retry: true is delivered once; a plain 500 is retried", async () => {
    const app = uniqueApp("nrh");
    await createApp(app, { retry: { max_attempts: 3, min_backoff: 0.05, max_backoff: 0.1 } });
    const final = await submit(app, "/no-retry/500", { body: "{}" });
    expect(await waitForState(final, [11])).toMatchObject({ attempts: 1, response: { status_code: 500 } });
    expect((await received(final)).length).toBe(1);
    const retried = await submit(app, "/status/500", { body: "{}" });
    expect(await waitForState(retried, [11])).toMatchObject({ attempts: 3 });
  });
});

describe("Retry-After", () => {
  it("after a 429 with Retry-After: 2 neither that task nor any other task of the app reaches the origin for 2 s", async () => {
    const app = uniqueApp("busy");
    await createApp(app, { retry: { min_backoff: 0.05, max_backoff: 10 } });
    const busy = await submit(app, `/busy/${app}/2`, { body: "{}" });
    const [first] = (await vi.waitUntil(async () => {
      const deliveries = await received(busy);
      return deliveries.length > 0 ? deliveries : undefined;
    })) as Awaited<ReturnType<typeof received>>;
    // Submitted while the app is held.
    const other = await submit(app, "/other", { body: "{}" });
    const done = await waitForState(busy, [10], 10_000);
    expect(done.attempts).toBe(2);
    await waitForState(other, [10], 10_000);
    const [, second] = await received(busy);
    const [otherDelivery] = await received(other);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(2000);
    expect(otherDelivery!.at - first!.at).toBeGreaterThanOrEqual(2000);
  });
});

describe("rate limits", () => {
  it("8 tasks at max_dispatches_per_second 2 and max_burst_size 1 reach the origin over at least 3 s", async () => {
    const app = uniqueApp("rate");
    await createApp(app, { rate_limits: { max_dispatches_per_second: 2, max_burst_size: 1 } });
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => submit(app, `/rate/${i}`, { body: "{}" })));
    for (const id of ids) await waitForState(id, [10], 15_000);
    const times = (await Promise.all(ids.map(async (id) => (await received(id))[0]!.at))).sort((a, b) => a - b);
    expect(times[7]! - times[0]!).toBeGreaterThanOrEqual(3000);
    // Never two within a token's time (0.5 s), give or take the clock's grain.
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(450);
  }, 30_000);

  it("max_concurrent_dispatches 2: a burst of 12 slow tasks never has more than 2 at the origin", async () => {
    const app = uniqueApp("conc");
    await createApp(app, { rate_limits: { max_concurrent_dispatches: 2 } });
    const ids = await Promise.all(Array.from({ length: 12 }, () => submit(app, "/sleep/300", { body: "{}" })));
    for (const id of ids) await waitForState(id, [10], 20_000);
    const starts = (await Promise.all(ids.map(async (id) => (await received(id))[0]!.at))).sort((a, b) => a - b);
    // Each holds the origin for 300 ms: at most 2 may start within any 300 ms.
    for (let i = 2; i < starts.length; i++) expect(starts[i]! - starts[i - 2]!).toBeGreaterThanOrEqual(290);
  }, 30_000);
});

describe("circuit breaker", () => {
  it("opens after repeated failures, probes after the cool-down, closes when the probe succeeds", async () => {
    const app = uniqueApp("circuit");
    await createApp(app, {
      circuit_breaker: { failure_threshold: 2, cool_down: 1 },
      retry: { max_attempts: 10, min_backoff: 0.05, max_backoff: 0.1 },
    });
    const id = await submit(app, `/flaky/${app}/3`, { body: "{}" });
    const opened = await vi.waitUntil(
      async () => {
        const record = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as {
          delivery: { state: string; reason: string; until: number };
        };
        return record.delivery.state === "open" ? record.delivery : undefined;
      },
      { timeout: 5000, interval: 20 },
    );
    expect(opened.reason).toContain("2 consecutive failures");
    const done = await waitForState(id, [10], 10_000);
    expect(done.attempts).toBe(4);
    const attempts = (await received(id)).map((delivery) => delivery.at);
    // Attempt 3 is the probe after the first cool-down (it fails: open again), attempt 4 the next probe.
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(950);
    expect(attempts[3]! - attempts[2]!).toBeGreaterThanOrEqual(950);
    const closed = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { delivery: { state: string } };
    expect(closed.delivery.state).toBe("closed");
  }, 20_000);

  it("while its probe is out, the circuit does not re-arm the alarm at once: the object is not woken in a loop", async () => {
    const app = uniqueApp("probeloop");
    await createApp(app, {
      circuit_breaker: { failure_threshold: 1, cool_down: 1 },
      retry: { max_attempts: 5, min_backoff: 600, max_backoff: 600 },
    });
    const stub = appQueue(env, app);
    // One failed attempt opens the circuit (its task retries in 10 minutes).
    const first = await parkedTask(app);
    expect((await stub.begin(first)).run).toBe(true);
    await stub.finish(first, 1, { kind: "response", status: 503, header: {}, body: new Uint8Array() });
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the cool-down
    // The probe runs (begun here, so no consumer finishes it), and another task waits, due now.
    const probe = await parkedTask(app);
    expect((await stub.begin(probe)).run).toBe(true);
    await submit(app, "/waits", { body: "{}" });
    const delivery = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { delivery: { state: string } };
    expect(delivery.delivery.state).toBe("half-open");
    // Over a second the object is not woken (each alarm is a metered request); before, its alarm
    // fired again at once, over and over, until the probe ended.
    const requests = async () => {
      const response = await call(`${CONTROL}/v1/meters?apps=${app}`);
      return ((await response.json()) as { meters: { do_requests: number } }).meters.do_requests;
    };
    const before = await requests();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await requests()) - before).toBeLessThanOrEqual(2); // the meters calls themselves
    // The next wake-up is the probe's lease (timeout + 30 s), not now.
    const alarmAt = await runInDurableObject(stub, (_instance: AppQueue, state) => state.storage.getAlarm());
    expect(alarmAt).not.toBeNull();
    expect(alarmAt! - Date.now()).toBeGreaterThan(20_000);
  });

  it("a probe that expires by retention lets the circuit probe again and close", async () => {
    const app = uniqueApp("probeexp");
    await createApp(app, {
      retention: 60,
      circuit_breaker: { failure_threshold: 1, cool_down: 1 },
      retry: { max_attempts: 2, min_backoff: 1, max_backoff: 1 },
    });
    const stub = appQueue(env, app);
    // A task older than the retention, running as the circuit's probe.
    const probe = await runInDurableObject(stub, (_instance: AppQueue, state) => {
      const { tasks, meta } = openStore(state.storage.sql);
      const { number } = JSON.parse(meta.get("identity")!) as { number: number };
      const createdMs = Date.now() - 120_000;
      const id = newTaskId(number, createdMs);
      tasks.insert(newTask(id, createdMs, { etaMs: createdMs }));
      tasks.markDoing(id, 1, Date.now(), Date.now() + 600_000);
      const circuit = { state: "half-open", failures: 0, untilMs: Date.now() - 1000, reason: "test", probe: id };
      meta.set("circuit", JSON.stringify(circuit));
      return id;
    });
    await evictDurableObject(stub); // woken again, the object reads what was written and re-arms its alarm
    expect((await waitForState(probe, [11])).error).toBe("expired");
    const id = await submit(app, "/after-expiry", { body: "{}" });
    expect(await waitForState(id, [10])).toMatchObject({ attempts: 1 });
    const closed = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { delivery: { state: string } };
    expect(closed.delivery.state).toBe("closed");
  }, 20_000);
});

describe("redrive and purge", () => {
  it("purging a task that finished once and was retried drops its pending notification too", async () => {
    const app = uniqueApp("purgentf");
    await createApp(app, { state: "Paused" });
    const id = await runInDurableObject(appQueue(env, app), (instance: TestAppQueue, state) => {
      const { tasks, notifications, meta } = openStore(state.storage.sql);
      const { number } = JSON.parse(meta.get("identity")!) as { number: number };
      const now = Date.now();
      const taskId = newTaskId(number, now);
      tasks.insert(newTask(taskId, now, { etaMs: now }));
      tasks.markFinished(taskId, 0, 11, now);
      notifications.add(taskId, "callback", `${env.TEST_ORIGIN}/hook`, now + 600_000);
      tasks.resetForRetry(taskId, now, 1);
      instance.resetCaches();
      return taskId;
    });
    const purged = await call(`${CONTROL}/v1/apps/${app}/purge`, { body: JSON.stringify({ state: 0 }) });
    expect(await purged.json()).toMatchObject({ deleted: 1 });
    const left = await runInDurableObject(appQueue(env, app), (_instance: AppQueue, state) =>
      state.storage.sql.exec("SELECT task_id FROM notifications WHERE task_id = ?", id).toArray(),
    );
    expect(left).toEqual([]);
  });

  it("a dry run counts; a redrive re-runs each matching failed task exactly once", async () => {
    const app = uniqueApp("redrive");
    await createApp(app, { retry: { max_attempts: 1 } });
    const flaky = await Promise.all(
      Array.from({ length: 5 }, (_, i) => submit(app, `/flaky/${app}-${i}/1`, { body: "{}" })),
    );
    const missing = await Promise.all(Array.from({ length: 3 }, () => submit(app, "/status/404", { body: "{}" })));
    for (const id of [...flaky, ...missing]) await waitForState(id, [11]);
    const dry = await call(`${CONTROL}/v1/apps/${app}/redrive`, {
      body: JSON.stringify({ state: 11, status_code: 503, dry_run: true }),
    });
    expect(await dry.json()).toEqual({ matched: 5, retried: 0, remaining: 5 });
    const run = await call(`${CONTROL}/v1/apps/${app}/redrive`, {
      body: JSON.stringify({ state: 11, status_code: 503 }),
    });
    expect(await run.json()).toEqual({ matched: 5, retried: 5, remaining: 0 });
    for (const id of flaky) {
      expect(await waitForState(id, [10])).toMatchObject({ attempts: 2 });
      expect((await received(id)).length).toBe(2);
    }
    for (const id of missing) expect((await received(id)).length).toBe(1);
    const again = await call(`${CONTROL}/v1/apps/${app}/redrive`, {
      body: JSON.stringify({ state: 11, status_code: 503 }),
    });
    expect(await again.json()).toMatchObject({ matched: 0 });
  });

  it("works in bounded batches: the first in the request, the rest by the alarm", async () => {
    const app = uniqueApp("bulk");
    await createApp(app, { state: "Paused" });
    const total = BULK_BATCH * 2 + 100;
    await runInDurableObject(appQueue(env, app), (instance: TestAppQueue, state) => {
      const store = openStore(state.storage.sql).tasks;
      const at = Date.now() - 60_000;
      for (let i = 0; i < total; i++) {
        const id = newTaskId(1, at + i);
        store.insert(newTask(id, at + i, { etaMs: at, maxAttempts: 1 }));
        if (i % 2 === 0) store.markFinished(id, 0, 11, at + i);
      }
      instance.resetCaches(); // the object counts again what this store wrote
    });
    const failed = Math.ceil(total / 2);
    const waiting = total - failed;
    const redriven = await call(`${CONTROL}/v1/apps/${app}/redrive`, { body: '{"state":11}' });
    expect(await redriven.json()).toEqual({ matched: failed, retried: BULK_BATCH, remaining: failed - BULK_BATCH });
    const stats = async () =>
      ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> }).stats;
    await vi.waitUntil(async () => (await runDurableObjectAlarm(appQueue(env, app)), (await stats())["failed"] === 0), {
      timeout: 10_000,
      interval: 20,
    });
    expect((await stats())["waiting"]).toBe(total);
    const purged = await call(`${CONTROL}/v1/apps/${app}/purge`, { body: '{"state":0}' });
    expect(await purged.json()).toEqual({ deleted: BULK_BATCH, remaining: total - BULK_BATCH });
    await vi.waitUntil(
      async () => (await runDurableObjectAlarm(appQueue(env, app)), (await stats())["waiting"] === 0),
      { timeout: 10_000, interval: 20 },
    );
    expect(waiting).toBeGreaterThan(0);
  });

  it("400 for a purge of anything but waiting tasks and a redrive of anything but failed ones", async () => {
    const app = uniqueApp("bulkerr");
    await createApp(app);
    for (const [path, body] of [
      ["purge", '{"state":11}'],
      ["purge", "{}"],
      ["redrive", '{"state":0}'],
      ["redrive", '{"state":11,"status_code":"x"}'],
      ["redrive", '{"state":11,"since":"yesterday"}'],
    ] as const) {
      const response = await call(`${CONTROL}/v1/apps/${app}/${path}`, { body });
      expect(response.status).toBe(400);
    }
  });
});

describe("stats", () => {
  it("percentiles within -10 % … +30 % of a scripted origin's times (the consumer's overhead only adds); counts, recent attempts, limits and delivery state", async () => {
    const app = uniqueApp("stats");
    await createApp(app, { rate_limits: { max_concurrent_dispatches: 20 } });
    // Origin times long enough that the consumer's overhead on a loaded machine (tens of ms, with
    // the other test files beside this one) stays inside the bound below.
    const sleeps = [...Array<number>(11).fill(400), ...Array<number>(8).fill(800), 1600];
    const startedMinute = Math.floor(Date.now() / 60_000);
    const ids = await Promise.all(sleeps.map((ms) => submit(app, `/sleep/${ms}`, { body: "{}" })));
    const waiting = await submit(app, "/later", { body: "{}", headers: { "asyncgate-delay": "1h" } });
    for (const id of ids) await waitForState(id, [10], 15_000);
    const response = await call(`${CONTROL}/v1/apps/${app}/stats`);
    expect(response.status).toBe(200);
    const stats = (await response.json()) as {
      counts: Record<string, number>;
      oldest_waiting_age: number;
      last_minute: { attempts: number; successes: number };
      last_hour: { attempts: number; successes: number };
      latency_ms: {
        attempt: { count: number; p50: number; p90: number; p99: number };
        submit_to_finish: { count: number };
      };
      resends: number;
      rate_limits: Record<string, unknown>;
      delivery: { state: string };
    };
    // The histogram's own error is ≤ 5 %; an attempt also takes the consumer's overhead, which
    // a loaded machine (the other test files run beside this one) stretches: never below the
    // origin's time by more than 10 %, and above it by at most 30 %.
    const within = (value: number, truth: number) => {
      expect(value).toBeGreaterThanOrEqual(truth * 0.9);
      expect(value).toBeLessThanOrEqual(truth * 1.3);
    };
    within(stats.latency_ms.attempt.p50, 400);
    within(stats.latency_ms.attempt.p90, 800);
    within(stats.latency_ms.attempt.p99, 1600);
    expect(stats.latency_ms.attempt.count).toBe(20);
    expect(stats.latency_ms.submit_to_finish.count).toBe(20);
    expect(stats.counts).toEqual({ waiting: 1, doing: 0, success: 20, failed: 0 });
    expect(stats.oldest_waiting_age).toBeLessThan(60);
    // last_minute is the current clock minute: a run that crossed a minute boundary counts fewer there.
    if (Math.floor(Date.now() / 60_000) === startedMinute)
      expect(stats.last_minute).toEqual({ attempts: 20, successes: 20 });
    else expect(stats.last_minute.attempts).toBeLessThanOrEqual(20);
    expect(stats.last_hour).toEqual({ attempts: 20, successes: 20 });
    expect(stats.resends).toBe(0);
    expect(stats.rate_limits).toMatchObject({ max_concurrent_dispatches: 20 });
    expect(stats.delivery.state).toBe("closed");
    expect(waiting).toBeTruthy();
  }, 30_000);
});
