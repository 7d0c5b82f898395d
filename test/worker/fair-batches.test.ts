// Proves a consumer batch shares its 6 slots between apps: an app whose slow origin comes first in
// the batch holds at most half of them, and another app's tasks run beside it, not after it.
import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { consumeTasks } from "../../src/delivery/consumer";
import { createApp, getTask, parkedTask, received, uniqueApp } from "./helpers";

describe("fair batches", () => {
  it("a slow app first in the batch does not hold up another app's tasks", async () => {
    const [slow, fast] = [uniqueApp("slow"), uniqueApp("fast")];
    await createApp(slow);
    await createApp(fast);
    const slowIds: string[] = [];
    const fastIds: string[] = [];
    for (let i = 0; i < 6; i++) slowIds.push(await parkedTask(slow, "/sleep/3000"));
    for (let i = 0; i < 6; i++) fastIds.push(await parkedTask(fast, "/sleep/10"));
    // In batch order the slow app's tasks would take every slot for 3 s.
    const batch = createMessageBatch<unknown>("asyncgate-tasks", [
      ...slowIds.map((id, i) => ({ id: `s${i}`, timestamp: new Date(), attempts: 1, body: { app: slow, id } })),
      ...fastIds.map((id, i) => ({ id: `f${i}`, timestamp: new Date(), attempts: 1, body: { app: fast, id } })),
    ]);
    await consumeTasks(batch, env);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.explicitAcks.length).toBe(12);
    const firstSlow = Math.min(...(await Promise.all(slowIds.map(async (id) => (await received(id))[0]!.at))));
    for (const id of fastIds) {
      expect((await getTask(id)).state).toBe(10);
      // Every fast task reached its origin well before the first slow one answered (3 s).
      expect((await received(id))[0]!.at - firstSlow).toBeLessThan(1500);
    }
    for (const id of slowIds) expect((await getTask(id)).state).toBe(10);
  });
});
