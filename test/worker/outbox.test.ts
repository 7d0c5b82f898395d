// Proves new tasks committed apart share queue messages (a short linger), and the outbox re-sends only what may be lost (sent while consumers are idle; not held by a consumer batch, nor waiting behind a backlog consumers are taking), counts re-sends, sends everything due again after a restart (its marks are kept in memory), and backs off from a queue that keeps refusing.
import { env } from "cloudflare:workers";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { appQueue } from "../../src/app/stubs";
import type { TestAppQueue } from "./test-app-queue";
import {
  CONTROL,
  call,
  createApp,
  getTask,
  lingered,
  parkedTask,
  received,
  submitInput,
  uniqueApp,
  waitForState,
} from "./helpers";

describe("outbox", () => {
  it("a message held in a consumer batch is not sent again; a lost one is, and re-sends are counted", async () => {
    const app = uniqueApp("claim");
    await createApp(app);
    const stub = appQueue(env, app);
    const held = await parkedTask(app, "/held");
    const lost = await parkedTask(app, "/lost");
    const stale = Date.now() - 5 * 60_000;
    await runInDurableObject(stub, async (instance: TestAppQueue) => {
      await instance.markSent(held, stale);
      await instance.markSent(lost, stale);
    });
    await stub.claim([held], 100);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // The held one keeps a message (its stale mark moved to now); the lost one was sent afresh.
    expect(await runInDurableObject(stub, (instance: TestAppQueue) => instance.sentAt(held))).toBeGreaterThan(stale);
    await waitForState(lost, [10]);
    const stats = ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> }).stats;
    expect(stats["resends"]).toBe(1);
  });

  it(
    "a message this object sent is not re-sent while consumers keep taking the app's messages (a backlog); after the object restarts it is sent at once",
    { timeout: 60_000 },
    async () => {
      const app = uniqueApp("waiting");
      await createApp(app);
      const stub = appQueue(env, app);
      // Marked as sent now, by this instance; no message is really out (as one stuck behind a backlog).
      const waiting = await parkedTask(app, "/waiting");
      const sentAt = await runInDurableObject(stub, (instance: TestAppQueue) => instance.sentAt(waiting));
      expect(sentAt).not.toBeNull();
      // Past the re-send check's 30 s while consumer batches keep claiming other messages of the app
      // (as behind a backlog); that also keeps the object awake (an idle one is evicted: a restart).
      const until = Date.now() + 31_000;
      while (Date.now() < until) {
        await stub.claim(["0".repeat(32)], 100);
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      await runInDurableObject(stub, (instance: AppQueue) => instance.alarm());
      expect(await runInDurableObject(stub, (instance: TestAppQueue) => instance.sentAt(waiting))).toBe(sentAt);
      const resends = async () =>
        ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> }).stats[
          "resends"
        ];
      expect(await resends()).toBe(0);
      // A restart: the object forgets what it sent (marks are kept in memory) and sends every
      // due waiting task again at once; that is a send, not a re-send of a message presumed lost.
      await evictDurableObject(stub);
      await runInDurableObject(stub, (instance: AppQueue) => instance.alarm());
      await waitForState(waiting, [10]);
      expect(await resends()).toBe(0);
    },
  );

  it("after a restart, a message out at the last checkpoint is not sent again at once but once it counts as lost; one sent after the checkpoint is sent at once", async () => {
    const app = uniqueApp("presume");
    await createApp(app);
    const stub = appQueue(env, app);
    const before = await parkedTask(app, "/before"); // marked sent, no message really out
    await runInDurableObject(stub, (instance: TestAppQueue) => instance.writeCheckpoint());
    const after = await parkedTask(app, "/after");
    await evictDurableObject(stub);
    const presumed = await runInDurableObject(stub, async (instance: TestAppQueue) => {
      await instance.alarm();
      return { before: await instance.sentAt(before), after: await instance.sentAt(after) };
    });
    expect(presumed.before).not.toBeNull();
    await waitForState(after, [10]);
    expect((await received(before)).length).toBe(0);
    expect((await getTask(before)).state).toBe(0);
    // 30 s after the checkpoint (moved back rather than waited for), it counts as lost: sent again.
    await runInDurableObject(stub, async (instance: TestAppQueue) => {
      await instance.markSent(before, Date.now() - 60_000);
      await instance.alarm();
    });
    await waitForState(before, [10]);
    const stats = ((await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> }).stats;
    expect(stats["resends"]).toBe(1);
  });

  it("a lone new task's message goes at once; new tasks committed one at a time right after share one message; ten go at once", async () => {
    const app = uniqueApp("linger");
    await createApp(app);
    const stub = appQueue(env, app);
    const writes = async () =>
      ((await (await call(`${CONTROL}/v1/meters?apps=${app}`)).json()) as { meters: Record<string, number> }).meters[
        "queue_writes"
      ]!;
    const sent = await runInDurableObject(stub, async (instance: AppQueue) => {
      const bindings = Reflect.get(instance, "env") as Env;
      const queue = bindings.TASKS;
      const messages: number[] = [];
      bindings.TASKS = {
        send: async () => {},
        sendBatch: async (batch: MessageSendRequest<{ id: string; more?: string[] }>[]) => {
          for (const { body } of batch) messages.push(1 + (body.more?.length ?? 0));
          await queue.sendBatch(batch);
        },
      } as unknown as Queue;
      try {
        // Three submissions, each its own group commit (each awaited before the next).
        for (let i = 0; i < 3; i++) {
          const submitted = await instance.submit(submitInput(`/linger/${i}`));
          if (!submitted.ok) throw new Error(submitted.error.message);
        }
        const afterThree = [...messages];
        await lingered();
        const lingeredOut = [...messages];
        // Ten in one turn: one group, a full message, sent with the commit.
        await Promise.all(Array.from({ length: 10 }, (_, i) => instance.submit(submitInput(`/full/${i}`))));
        return { afterThree, lingeredOut, full: messages.slice(lingeredOut.length) };
      } finally {
        bindings.TASKS = queue;
      }
    });
    // The first went at once (nothing had gone lately), the next two lingered together.
    expect(sent).toEqual({ afterThree: [1], lingeredOut: [1, 2], full: [10] });
    expect(await writes()).toBeGreaterThanOrEqual(2);
  });

  it("a queue that keeps refusing is not retried on every alarm: sends wait out a doubling backoff", async () => {
    const app = uniqueApp("backoff");
    await createApp(app);
    const stub = appQueue(env, app);
    const attempts = await runInDurableObject(stub, async (instance: AppQueue) => {
      const bindings = Reflect.get(instance, "env") as Env;
      const queue = bindings.TASKS;
      let sends = 0;
      const unavailable = async () => {
        sends++;
        throw new Error("queue unavailable");
      };
      bindings.TASKS = { send: unavailable, sendBatch: unavailable } as unknown as Queue;
      const seen: number[] = [];
      try {
        const submitted = await instance.submit(submitInput("/b"));
        if (!submitted.ok) throw new Error(submitted.error.message);
        await lingered();
        seen.push(sends); // the send after submit (a lone task's message lingers a moment for company)
        for (let i = 0; i < 5; i++) await instance.alarm(); // alarms within the first backoff: no send
        seen.push(sends);
        await new Promise((resolve) => setTimeout(resolve, 1_100)); // the first backoff (≤ 1 s) has passed
        await instance.alarm(); // (the runtime's own alarm may have sent already)
        seen.push(sends);
        for (let i = 0; i < 5; i++) await instance.alarm(); // the next backoff is ≥ 1 s: no send
        seen.push(sends);
      } finally {
        bindings.TASKS = queue;
      }
      return seen;
    });
    const [atSubmit, inFirstBackoff, afterIt, inSecondBackoff] = attempts as [number, number, number, number];
    expect(atSubmit).toBe(1);
    expect(inFirstBackoff).toBe(atSubmit);
    expect(afterIt).toBeGreaterThan(inFirstBackoff);
    expect(inSecondBackoff).toBe(afterIt);
  });
});
