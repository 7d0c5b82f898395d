// Proves an app over shard objects against `wrangler dev` (issue 25's acceptance, scaled to the suite):
// `shards: 4, partition: 60`, tasks submitted across a partition boundary and across a kill -9 of the
// gateway; every id reads back and finishes, a cursor listing returns each task once, the counts match,
// the SDK's `since=0` subscriber sees every result once in seq order across the restart, duplicates
// meet. (An app with a delivery limit is not spread yet: shards/shard-sync.ts activeShards.)
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AsyncgateClient, type TaskResult } from "../../src/client/index";
import { shardOfTask } from "../../src/shards/routing";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

/** An origin that takes 80 ms per request, counts deliveries per task and how many it holds at once. */
async function countingOrigin(): Promise<{
  url: string;
  peak: () => number;
  delivered: Map<string, number>;
  server: Server;
}> {
  let open = 0;
  let peak = 0;
  const delivered = new Map<string, number>();
  const server = createServer((req, res) => {
    req.resume();
    open++;
    peak = Math.max(peak, open);
    const id = String(req.headers["asyncgate-task-id"]);
    setTimeout(() => {
      open--;
      delivered.set(id, (delivered.get(id) ?? 0) + 1);
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    }, 80);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, peak: () => peak, delivered, server };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("an app over shard objects, under wrangler dev", () => {
  let gateway: Gateway | undefined;
  let origin: Awaited<ReturnType<typeof countingOrigin>> | undefined;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-shards-"));

  afterAll(async () => {
    await gateway?.stop();
    origin?.server.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it(
    "takes tasks across a partition boundary and a kill -9: each finishes, lists, counts and is fed once",
    { timeout: 300_000 },
    async () => {
      origin = await countingOrigin();
      const port = await freePort();
      gateway = await startGateway({ port, persistTo });
      const control = `localhost:${port}`;
      const appHost = `sharded.async.localhost:${port}`;
      const created = await signedCall(port, control, "POST", "/v1/apps", {
        body: JSON.stringify({
          name: "sharded",
          origin: origin.url,
          shards: 4,
          partition: 60,
          timeout: 5,
          retry: { min_backoff: 0.1, max_backoff: 1 },
        }),
      });
      expect(created.status).toBe(201);
      const client = new AsyncgateClient({
        endpoint: `http://async.localhost:${port}`,
        connectTo: `http://127.0.0.1:${port}`,
        ...E2E_KEYS,
      });

      // The subscriber from seq 0, reconnecting by itself across the kill.
      const seen: TaskResult[] = [];
      const feed = client.subscribe("sharded", {
        since: 0,
        heartbeatMs: 5_000,
        reconnect: { minMs: 200, maxMs: 1_000 },
      });
      let feeding = true;
      const pulling = (async () => {
        while (feeding) {
          const next = await feed.next();
          if (next.done) return;
          seen.push(next.value);
        }
      })();

      // Start so that the load crosses a minute (a partition) boundary in its second half.
      while (new Date().getUTCSeconds() < 40 || new Date().getUTCSeconds() > 50) await sleep(250);
      const boundary = Math.ceil(Date.now() / 60_000) * 60_000;

      const accepted: string[] = [];
      const dedup = new Map<string, string[]>();
      let stop = false;
      const load = async (worker: number) => {
        for (let n = 0; !stop; n++) {
          // Two of every five requests of a worker share a deduplication id; they must meet when both
          // come in one partition (a minute here: with shards a duplicate meets within a partition).
          const key = `w${worker}-${Math.floor(n / 5)}`;
          const headers = n % 5 < 2 ? { "asyncgate-deduplication-id": key } : undefined;
          const partition = Math.floor(Date.now() / 60_000);
          try {
            const response = await signedCall(port, appHost, "POST", "/work", {
              body: `{"n":${n}}`,
              headers,
              timeoutMs: 5_000,
            });
            if (response.status !== 202 && response.status !== 200) continue;
            const id = response.json<{ id: string }>().id;
            if (headers && Math.floor(Date.now() / 60_000) === partition) {
              dedup.set(`${key}@${partition}`, [...(dedup.get(`${key}@${partition}`) ?? []), id]);
            }
            if (response.status === 202) accepted.push(id);
          } catch {
            return; // the gateway is gone: what was not answered was never promised
          }
        }
      };
      let workers = Array.from({ length: 6 }, (_, i) => load(i));
      while (accepted.length < 120) await sleep(50);
      await gateway.kill();
      stop = true;
      await Promise.all(workers);
      gateway = await startGateway({ port, persistTo });
      stop = false;
      workers = Array.from({ length: 6 }, (_, i) => load(i + 6));
      while (Date.now() < boundary + 3_000 || accepted.length < 300) await sleep(50);
      stop = true;
      await Promise.all(workers);

      // Across at least two partitions, in several shards.
      const shards = new Set(accepted.map((id) => shardOfTask("sharded", id)!.name));
      const partitions = new Set(accepted.map((id) => shardOfTask("sharded", id)!.startMs));
      expect(partitions.size).toBeGreaterThanOrEqual(2);
      expect(shards.size).toBeGreaterThanOrEqual(4);

      // Every id reads back and finishes (the reads wake the shards a local restart left asleep).
      const pending = new Set(accepted);
      const deadline = Date.now() + 150_000;
      while (pending.size > 0 && Date.now() < deadline) {
        for (const id of [...pending]) {
          const task = await signedCall(port, control, "GET", `/v1/task/${id}`, { timeoutMs: 10_000 }).catch(
            () => null,
          );
          if (task?.status === 200 && task.json<{ state: number }>().state === 10) pending.delete(id);
        }
        if (pending.size > 0) await sleep(500);
      }
      expect([...pending], gateway.output().slice(-3000)).toEqual([]);
      for (const id of accepted) expect(origin.delivered.get(id) ?? 0).toBeGreaterThanOrEqual(1);
      // Duplicates met: a deduplication id answered one id.
      expect([...dedup.values()].filter((ids) => ids.length === 2).length).toBeGreaterThan(10);
      for (const ids of dedup.values()) expect(new Set(ids).size).toBe(1);

      // One cursor over every shard: each task once.
      const listed: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await signedCall(
          port,
          control,
          "GET",
          `/v1/tasks?app=sharded&limit=100${cursor ? `&cursor=${cursor}` : ""}`,
        );
        expect(page.status).toBe(200);
        const body = page.json<{ tasks: { id: string }[]; cursor: string | null }>();
        listed.push(...body.tasks.map((task) => task.id));
        cursor = body.cursor;
      } while (cursor);
      // Each once; besides those answered, a few the kill cut off before their answer may be stored.
      expect(new Set(listed).size).toBe(listed.length);
      const listedSet = new Set(listed);
      expect(accepted.filter((id) => !listedSet.has(id))).toEqual([]);
      expect(listed.length - accepted.length).toBeLessThanOrEqual(12);
      const described = await signedCall(port, control, "GET", "/v1/apps/sharded");
      expect(described.json<{ stats: Record<string, number> }>().stats).toMatchObject({
        success: listed.length,
        waiting: 0,
      });

      // The feed: every result once, in seq order, across the restart.
      const until = Date.now() + 30_000;
      while (new Set(seen.map((result) => result.id)).size < listed.length && Date.now() < until) await sleep(200);
      feeding = false;
      await feed.return!();
      await pulling.catch(() => undefined);
      const ids = seen.map((result) => result.id);
      expect(new Set(ids)).toEqual(listedSet);
      expect(ids.length).toBe(listed.length);
      const seqs = seen.map((result) => result.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      console.log(
        `shards under wrangler dev: ${accepted.length} tasks in ${shards.size} shard objects over ${partitions.size} ` +
          `partitions across a kill -9; origin peak ${origin.peak()} at once; ` +
          `${[...origin.delivered.values()].filter((n) => n > 1).length} delivered more than once`,
      );
    },
  );
});
