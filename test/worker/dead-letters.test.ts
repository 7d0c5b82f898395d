// The dead-letter queue's consumer: a message the task consumer gave up on is handed back to its
// app's object, which sends a still-waiting task again from its outbox, reschedules a pending
// notification, and leaves running, finished and unknown tasks be; every message is acked.
import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import entry from "../../src/index";
import { appQueue } from "../../src/app/stubs";
import type { TestAppQueue } from "./test-app-queue";
import type { TaskMessage } from "../../src/shared/types";
import { createApp, finishParked, parkedTask, uniqueApp, waitForState } from "./helpers";

const worker = entry as Required<Pick<ExportedHandler<Env, unknown>, "queue">>;

async function deadLetters(bodies: unknown[]) {
  const batch = createMessageBatch<unknown>(
    "asyncgate-tasks-dlq",
    bodies.map((body, i) => ({ id: `dl${i}`, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

const dispatchedOf = (app: string, id: string) =>
  runInDurableObject(appQueue(env, app), (instance: TestAppQueue) => instance.sentAt(id));

describe("the dead-letter queue", () => {
  it("sends a waiting task again, and it is delivered", async () => {
    const app = uniqueApp("dlq");
    await createApp(app);
    // Parked: due, marked as sent, with no message anywhere (as if the consumer kept failing on it).
    const id = await parkedTask(app, "/dead-lettered");
    const before = await dispatchedOf(app, id);
    const warnings = vi.spyOn(console, "warn");
    const result = await deadLetters([{ app, id } satisfies TaskMessage]);
    expect(result.explicitAcks).toEqual(["dl0"]);
    // One structured line says what became of it.
    const lines = warnings.mock.calls
      .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
      .filter((line) => line["event"] === "dead_letter");
    warnings.mockRestore();
    expect(lines).toEqual([{ level: "warn", event: "dead_letter", app, task: id, kind: "task", action: "resent" }]);
    const after = await dispatchedOf(app, id);
    expect(after).not.toBe(before); // sent afresh by the outbox
    expect((await waitForState(id, [10])).state).toBe(10);
  });

  it("hands back every task of a several-task message", async () => {
    const app = uniqueApp("dlqmany");
    await createApp(app);
    const ids = [await parkedTask(app, "/d1"), await parkedTask(app, "/d2")];
    const result = await deadLetters([{ app, id: ids[0]!, more: [ids[1]!] } satisfies TaskMessage]);
    expect(result.explicitAcks).toEqual(["dl0"]);
    for (const id of ids) expect((await waitForState(id, [10])).state).toBe(10);
  });

  it("leaves finished and unknown tasks be, reschedules a pending notification, acks malformed bodies", async () => {
    const app = uniqueApp("dlq2");
    await createApp(app);
    const finished = await finishParked(app);
    const result = await deadLetters([
      { app, id: finished },
      { app, id: "0".repeat(32) },
      { app: uniqueApp("never"), id: "0".repeat(32) },
      { app, id: finished, notify: "callback" },
      { nonsense: true },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["dl0", "dl1", "dl2", "dl3", "dl4"]);
    expect(result.retryMessages).toEqual([]);
  });
});
