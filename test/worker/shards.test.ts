// Proves an app spread over shard objects (shards/): submissions land in the shards of the current
// partition, every id reads back through its shard, deliveries run, listings and counts span every
// shard, the feed stays one stream with one seq, dedup ids meet, keys and config reach the shards, and
// deleting the app empties them.
import { env, exports } from "cloudflare:workers";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AppQueue } from "../../src/app/app-queue";
import { appQueue } from "../../src/app/stubs";
import { shardOfTask } from "../../src/shards/routing";
import { trimLog } from "../../src/shards/shard-home";
import { openStore } from "../../src/app/store";
import { newShardTaskId, shardRouteOf } from "../../src/shared/task-id";
import type { TaskRecord } from "../../src/shared/types";
import {
  CONTROL,
  appUrl,
  call,
  createApp,
  getTask,
  signedRequest,
  sql,
  submit,
  uniqueApp,
  waitForState,
} from "./helpers";

type Result = TaskRecord & { seq: number };

async function listAll(app: string, limit: number): Promise<TaskRecord[]> {
  const tasks: TaskRecord[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const response = await call(`${CONTROL}/v1/tasks?app=${app}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { tasks: TaskRecord[]; cursor: string | null };
    tasks.push(...body.tasks);
    cursor = body.cursor;
    if (!cursor) return tasks;
  }
  throw new Error("listing did not end");
}

async function subscribe(app: string, query: string): Promise<{ results: Result[]; ws: WebSocket }> {
  const request = await signedRequest(`${CONTROL}/v1/tasks?app=${app}${query}`, { headers: { upgrade: "websocket" } });
  const response = await exports.default.fetch(request);
  if (response.status !== 101 || !response.webSocket) throw new Error(`upgrade: ${response.status}`);
  const ws = response.webSocket;
  const results: Result[] = [];
  ws.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data as string) as Result | { type: string };
    if (!("type" in frame)) results.push(frame);
  });
  ws.accept();
  return { results, ws };
}

describe("an app over shard objects", () => {
  it("stores tasks in its shards, delivers them, lists and counts them app-wide, and feeds one stream", async () => {
    const app = uniqueApp("shards");
    await createApp(app, { shards: 4, partition: 60 });
    const subscriber = await subscribe(app, "&since=0");
    const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(app, `/s/${i}`, { body: "{}" })));
    // Each id routes to a shard of a 1-minute partition; several shards are used.
    for (const id of ids) expect(shardRouteOf(id)).toMatchObject({ partitionMinutes: 1 });
    expect(new Set(ids.map((id) => shardRouteOf(id)!.shard)).size).toBeGreaterThan(1);
    // Delivered through the shards, read back through them.
    for (const id of ids) expect((await waitForState(id, [10])).app).toBe(app);
    // The app's own object holds none of them.
    const ownRows = await runInDurableObject(
      appQueue(env, app),
      (_instance: AppQueue, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks").one().n,
    );
    expect(ownRows).toBe(0);
    // One cursor over every shard, each task once, newest first.
    const listed = await listAll(app, 7);
    expect(listed.map((task) => task.id).sort()).toEqual([...ids].sort());
    expect(listed.map((task) => task.id)).toEqual([...listed.map((task) => task.id)].sort().reverse());
    // Counts app-wide.
    const described = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> };
    expect(described.stats).toMatchObject({ success: 40, waiting: 0, failed: 0 });
    const stats = (await (await call(`${CONTROL}/v1/apps/${app}/stats`)).json()) as {
      counts: Record<string, number>;
      storage: { partitions: { start: number; end: number; shards: number; tasks: number }[] };
    };
    expect(stats.counts["success"]).toBe(40);
    const stored = stats.storage.partitions.reduce((n, partition) => n + partition.tasks, 0);
    expect(stored).toBe(40);
    for (const partition of stats.storage.partitions) expect(partition.end - partition.start).toBe(60);
    // The feed: every result once, seqs 1..40 of the app.
    await vi.waitUntil(() => subscriber.results.length >= 40, { timeout: 10_000 });
    expect(subscriber.results.map((result) => result.id).sort()).toEqual([...ids].sort());
    expect(subscriber.results.map((result) => result.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // A resume from seq 10 replays 11..40 from the shards, in order.
    const resumed = await subscribe(app, "&since=10");
    await vi.waitUntil(() => resumed.results.length >= 30, { timeout: 10_000 });
    expect(resumed.results.map((result) => result.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 11));
    expect(resumed.results.map((result) => result.id)).toEqual(subscriber.results.slice(10).map((result) => result.id));
    subscriber.ws.close();
    resumed.ws.close();
  }, 30_000);

  it("meets duplicates in one shard, takes keys and config changes to every shard", async () => {
    const app = uniqueApp("shards-dedup");
    await createApp(app, { shards: 4, partition: 60 });
    const headers = { "asyncgate-deduplication-id": "order-17" };
    const first = await submit(app, "/d", { body: "{}", headers });
    const second = await call(appUrl(app, "/d"), { method: "POST", body: "{}", headers });
    expect(second.status).toBe(200);
    expect(((await second.json()) as { id: string }).id).toBe(first);

    // A key made after the shards opened works on them; revoked, it fails at once.
    const created = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["submit"] }) });
    const key = (await created.json()) as { access_key: string; secret_key: string };
    const keys = { accessKey: key.access_key, secretKey: key.secret_key };
    const withKey = await Promise.all(Array.from({ length: 8 }, () => submit(app, "/k", { body: "{}", keys })));
    expect(withKey.every((id) => shardRouteOf(id) !== null)).toBe(true);
    const revoked = await call(`${CONTROL}/v1/apps/${app}/keys/${key.access_key}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    for (let i = 0; i < 8; i++) {
      const refused = await call(appUrl(app, "/k"), { method: "POST", body: "{}", keys });
      expect(refused.status).toBe(401);
    }

    // Paused reaches every shard: a new task waits.
    const paused = await call(`${CONTROL}/v1/apps/${app}`, {
      method: "PATCH",
      body: JSON.stringify({ state: "Paused" }),
    });
    expect(paused.status).toBe(200);
    const waiting = await submit(app, "/p", { body: "{}" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await getTask(waiting)).state).toBe(0);
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ state: "Active" }) });
    await waitForState(waiting, [10]);
  }, 30_000);

  it("grows from 2 to 4 shards without losing a task, and deleting the app empties its shards", async () => {
    const app = uniqueApp("shards-grow");
    await createApp(app, { shards: 2, partition: 60 });
    const before = await Promise.all(Array.from({ length: 12 }, () => submit(app, "/g", { body: "{}" })));
    expect(new Set(before.map((id) => shardRouteOf(id)!.shard)).size).toBeLessThanOrEqual(2);
    await call(`${CONTROL}/v1/apps/${app}`, { method: "PATCH", body: JSON.stringify({ shards: 4 }) });
    // The Worker learns the new count from the next answer (a shard's copy was updated before the PATCH answered).
    before.push(await submit(app, "/g", { body: "{}" }));
    const after = await Promise.all(Array.from({ length: 40 }, () => submit(app, "/g", { body: "{}" })));
    expect(Math.max(...after.map((id) => shardRouteOf(id)!.shard))).toBeGreaterThan(1);
    for (const id of [...before, ...after]) await waitForState(id, [10]);
    expect((await listAll(app, 100)).length).toBe(53);

    const shardNames = [...new Set([...before, ...after].map((id) => shardOfTask(app, id)!.name))];
    expect((await call(`${CONTROL}/v1/apps/${app}`, { method: "DELETE" })).status).toBe(200);
    for (const name of shardNames) {
      const tables = await runInDurableObject(appQueue(env, name), (_instance: AppQueue, state) =>
        state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'tasks'").toArray(),
      );
      expect(tables).toEqual([]);
    }
    expect((await call(`${CONTROL}/v1/task/${before[0]}`)).status).toBe(404);
  }, 30_000);

  it("drops a partition's shard objects whole once past retention and done; a busy one waits", async () => {
    const app = uniqueApp("shards-retire");
    await createApp(app, { shards: 2, partition: 60 });
    const created = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["query"] }) });
    const key = (await created.json()) as { access_key: string; secret_key: string };
    const ids = await Promise.all(Array.from({ length: 6 }, () => submit(app, "/r", { body: "{}" })));
    for (const id of ids) await waitForState(id, [10]);
    const storage = async () =>
      ((await (await call(`${CONTROL}/v1/apps/${app}/stats`)).json()) as { storage?: { partitions: unknown[] } })
        .storage?.partitions ?? [];
    expect((await storage()).length).toBeGreaterThan(0);
    const names = [...new Set(ids.map((id) => shardOfTask(app, id)!.name))];

    // The partition ended more than retention (7 days) ago: the app's own object's alarm drops it.
    const home = appQueue(env, app);
    await runInDurableObject(home, (_instance: AppQueue, state) => {
      state.storage.sql.exec("UPDATE shards SET end_ms = end_ms - 8 * 86400000, start_ms = start_ms - 8 * 86400000");
    });
    await evictDurableObject(home); // wakes with the rows as written, and its alarm due at once
    await vi.waitUntil(async () => (await storage()).length === 0, { timeout: 10_000, interval: 100 });
    for (const name of names) {
      const tables = await runInDurableObject(appQueue(env, name), (_instance: AppQueue, state) =>
        state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table'").toArray(),
      );
      expect(tables).toEqual([]);
    }
    // A replay from seq 0 passes the dropped partition's results over, and stays open.
    const replay = await subscribe(app, "&since=0");
    let closed = false;
    replay.ws.addEventListener("close", () => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(replay.results).toEqual([]);
    expect(closed).toBe(false);
    replay.ws.close();
    // Its tasks are gone: 404, for the admin and for a key of the app alike (not 401: the key is good).
    expect((await call(`${CONTROL}/v1/task/${ids[0]}`)).status).toBe(404);
    const keys = { accessKey: key.access_key, secretKey: key.secret_key };
    expect((await call(`${CONTROL}/v1/task/${ids[0]}`, { keys })).status).toBe(404);

    // A partition with a task still waiting (the app paused) is kept.
    const busy = uniqueApp("shards-busy");
    await createApp(busy, { shards: 2, partition: 60, state: "Paused" });
    const waiting = await submit(busy, "/w", { body: "{}" });
    const busyHome = appQueue(env, busy);
    await runInDurableObject(busyHome, (_instance: AppQueue, state) => {
      state.storage.sql.exec("UPDATE shards SET end_ms = end_ms - 8 * 86400000, start_ms = start_ms - 8 * 86400000");
    });
    await evictDurableObject(busyHome);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await getTask(waiting)).state).toBe(0);
  }, 30_000);

  it("pushes the app's copy again to a shard that missed it: a revoked key does not outlive a failed push", async () => {
    const app = uniqueApp("shards-lag");
    await createApp(app, { shards: 2, partition: 60 });
    const created = await call(`${CONTROL}/v1/apps/${app}/keys`, { body: JSON.stringify({ permissions: ["submit"] }) });
    const key = (await created.json()) as { access_key: string; secret_key: string };
    const keys = { accessKey: key.access_key, secretKey: key.secret_key };
    const ids = await Promise.all(Array.from({ length: 8 }, () => submit(app, "/k", { body: "{}", keys })));
    const shard = shardOfTask(app, ids[0]!)!.name;
    // The shard's copy from before the revocation, as if the revocation's push had failed.
    const stale = await runInDurableObject(appQueue(env, shard), (_instance: AppQueue, state) =>
      state.storage.sql.exec("SELECT * FROM access_keys").toArray(),
    );
    expect((await call(`${CONTROL}/v1/apps/${app}/keys/${key.access_key}`, { method: "DELETE" })).status).toBe(200);
    await runInDurableObject(appQueue(env, shard), (_instance: AppQueue, state) => {
      for (const row of stale) {
        state.storage.sql.exec(
          "INSERT INTO access_keys (access_key, sealed_secret, permissions, created_ms) VALUES (?, ?, ?, ?)",
          row["access_key"]!,
          row["sealed_secret"]!,
          row["permissions"]!,
          row["created_ms"]!,
        );
      }
      state.storage.sql.exec("UPDATE meta SET value = '0' WHERE key = 'shard_version'");
    });
    await evictDurableObject(appQueue(env, shard));
    const home = appQueue(env, app);
    await runInDurableObject(home, (_instance: AppQueue, state) => {
      state.storage.sql.exec("UPDATE shards SET synced_version = 0 WHERE name = ?", shard);
    });
    // The stale shard takes the revoked key (what a failed push leaves)…
    const accepts = async () =>
      (
        await Promise.all(
          Array.from({ length: 12 }, () => call(appUrl(app, "/k"), { method: "POST", body: "{}", keys })),
        )
      ).some((response) => response.status === 202);
    expect(await accepts()).toBe(true);
    // …until the app's own object wakes, sees the row behind, and its alarm pushes the copy again.
    await evictDurableObject(home);
    await vi.waitUntil(async () => !(await accepts()), { timeout: 10_000, interval: 200 });
  }, 30_000);

  it("trims the head of the app's log of shard results once past twice the retention, and no further", async () => {
    const app = uniqueApp("shards-trim");
    await createApp(app, { shards: 2, partition: 60 });
    const result = await sql(app)((storage) => {
      const tasks = openStore(storage).tasks;
      const now = Date.now();
      const day = 86_400_000;
      const route = { partitionMinutes: 1440, shard: 0 };
      const batch = (createdMs: number, seqs: number[]) => {
        tasks.openCountBatch();
        seqs.forEach((seq, i) => tasks.numberResult(`${newShardTaskId(1, route, createdMs + i)}:${seq}`));
        tasks.closeCountBatch(now); // a shard's results are written with their batch: a log row each
        tasks.commitCountBatch();
      };
      batch(now - 15 * day, [1, 2, 3, 4, 5]);
      batch(now - 1 * day, [6, 7, 8]);
      const rowsBefore = storage.exec<{ n: number }>("SELECT COUNT(*) AS n FROM results_log").one().n;
      const written = trimLog(tasks.results, now, 7 * day);
      const left = [...tasks.results.after(0)].map((entry) => entry.seq);
      return { rowsBefore, written, left };
    });
    expect(result.rowsBefore).toBe(2);
    expect(result.written).toBe(1);
    expect(result.left).toEqual([6, 7, 8]);
  });
});
