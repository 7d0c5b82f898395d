// `npm run chaos` (not part of `npm test`): the gateway under `wrangler dev` is killed with SIGKILL
// and restarted on the same state every 45–70 s for 5 minutes (CHAOS_SECONDS), under steady load
// (CHAOS_SHARDS=4: on an app over 4 shard objects per 1-minute partition),
// with an origin that fails a third of the first attempts, and two live-feed subscribers that
// resume with `since=` after every crash. It prints the tasks acknowledged (202), those lost (must
// be 0), deliveries beyond what the origin's failures explain (repeats, each either running at a
// kill or not), and for each subscriber the results it missed or saw twice (must be 0).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import qiniu from "qiniu";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startOrigin } from "../../scripts/origin.mjs";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

const SECONDS = Number(process.env["CHAOS_SECONDS"] ?? 300);
/** With CHAOS_SHARDS > 1 the app spreads over that many shard objects per 1-minute partition. */
const SHARDS = Number(process.env["CHAOS_SHARDS"] ?? 1);
/** Submissions per second at most (two clients). */
const RATE = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const say = (what: string) =>
  console.log(`chaos [${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${what}`);

/** A live-feed client that resumes from the last seq it saw whenever its socket drops. */
class Subscriber {
  readonly seen = new Map<string, number>();
  readonly seqs: number[] = [];
  lastSeq = 0;
  #socket: WebSocket | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(
    readonly name: string,
    readonly port: () => number,
  ) {}

  async run(): Promise<void> {
    while (!this.#stopped) {
      await this.#connect().catch(() => sleep(500));
    }
  }

  /** One connection, until it closes. */
  #connect(): Promise<void> {
    const port = this.port();
    const host = `localhost:${port}`;
    const path = `/v1/tasks?app=chaos&since=${this.lastSeq}`;
    const mac = new qiniu.auth.digest.Mac(E2E_KEYS.accessKey, E2E_KEYS.secretKey);
    const authorization = qiniu.util.generateAccessTokenV2(mac, `http://${host}${path}`, "GET", "", undefined, {});
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, authorization } });
      this.#socket = socket;
      socket.on("open", () => {
        this.#heartbeat = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send("OK"), 10_000);
      });
      socket.on("message", (data) => {
        const text = data.toString();
        if (text === "OK") return;
        const frame = JSON.parse(text) as { type?: string; id?: string; seq?: number };
        if (frame.type === "hello" || frame.id === undefined || frame.seq === undefined) return;
        this.seen.set(frame.id, (this.seen.get(frame.id) ?? 0) + 1);
        this.seqs.push(frame.seq);
        this.lastSeq = Math.max(this.lastSeq, frame.seq);
      });
      socket.on("error", reject);
      socket.on("close", () => {
        if (this.#heartbeat) clearInterval(this.#heartbeat);
        resolve();
      });
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#socket?.close(1000);
  }
}

describe("chaos: kill -9 loop under load", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
  let gateway: Gateway | undefined;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-chaos-"));

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it(
    "loses no acknowledged task, and no subscriber misses or repeats a result",
    { timeout: (SECONDS + 420) * 1000 },
    async () => {
      origin = await startOrigin({ quiet: true });
      const port = await freePort();
      gateway = await startGateway({ port, persistTo });
      const control = `localhost:${port}`;
      const appHost = `chaos.async.localhost:${port}`;
      const created = await signedCall(port, control, "POST", "/v1/apps", {
        body: JSON.stringify({
          name: "chaos",
          origin: origin.url,
          timeout: 5,
          retry: { min_backoff: 0.2, max_backoff: 1 },
          ...(SHARDS > 1 ? { shards: SHARDS, partition: 60 } : {}),
        }),
      });
      expect(created.status).toBe(201);

      const subscribers = [new Subscriber("A", () => port), new Subscriber("B", () => port)];
      const feeds = subscribers.map((subscriber) => subscriber.run());

      // Load: two clients, RATE submissions per second in all, until the end; a third of the tasks
      // fail their first attempt (503), the rest answer after 20 ms.
      const accepted = new Map<string, { flaky: boolean }>();
      let n = 0;
      let loading = true;
      const client = async () => {
        while (loading) {
          const flaky = n % 3 === 0;
          const path = flaky ? `/flaky/chaos-${n}/1` : "/sleep/20";
          n++;
          const response = await signedCall(port, appHost, "POST", path, {
            body: `{"n":${n}}`,
            timeoutMs: 5_000,
          }).catch(() => null);
          if (response?.status === 202) accepted.set(response.json<{ id: string }>().id, { flaky });
          await sleep(response ? 2000 / RATE : 500); // the gateway is down: wait for it
        }
      };
      const clients = [client(), client()];

      const kills: number[] = [];
      while (Date.now() - started < SECONDS * 1000) {
        const wait = 45_000 + Math.random() * 25_000;
        const until = Math.min(Date.now() + wait, started + SECONDS * 1000);
        while (Date.now() < until) await sleep(250);
        if (Date.now() - started >= SECONDS * 1000) break;
        say(`${accepted.size} acknowledged; kill -9`);
        kills.push(Date.now());
        await gateway.kill();
        gateway = await startGateway({ port, persistTo });
        say("restarted");
      }
      loading = false;
      await Promise.all(clients);
      say(`load stopped: ${accepted.size} acknowledged, ${kills.length} kills; waiting for every task to finish`);

      // Every acknowledged task finishes (the leases of attempts cut by a kill run out after 35 s,
      // unclaimed messages count as lost after 30 s).
      const pending = new Set(accepted.keys());
      const deadline = Date.now() + 180_000;
      while (pending.size > 0 && Date.now() < deadline) {
        for (const id of [...pending]) {
          const task = await signedCall(port, control, "GET", `/v1/task/${id}`, { timeoutMs: 10_000 }).catch(
            () => null,
          );
          if (task?.status === 200 && task.json<{ state: number }>().state === 10) pending.delete(id);
        }
        if (pending.size > 0) await sleep(1000);
      }
      // The subscribers have every result (or the time runs out).
      const everyoneHasAll = () =>
        subscribers.every((subscriber) => [...accepted.keys()].every((id) => subscriber.seen.has(id)));
      const feedDeadline = Date.now() + 30_000;
      while (!everyoneHasAll() && Date.now() < feedDeadline) await sleep(500);
      for (const subscriber of subscribers) subscriber.stop();
      await Promise.all(feeds);

      // Deliveries beyond what the origin's own 503s explain.
      const deliveries = new Map<string, number[]>();
      for (const request of origin.received) {
        const id = String(request.headers["asyncgate-task-id"]);
        deliveries.set(id, [...(deliveries.get(id) ?? []), request.at]);
      }
      let repeats = 0;
      let explained = 0;
      for (const [id, { flaky }] of accepted) {
        const times = deliveries.get(id) ?? [];
        const extra = times.length - (flaky ? 2 : 1);
        if (extra <= 0) continue;
        repeats += extra;
        // A repeat is explained by a kill when a delivery of the task came within an attempt's
        // timeout (5 s) before it: that attempt was running, or its result unstored, at the kill.
        if (times.some((at) => kills.some((kill) => at <= kill && kill - at <= 5_000))) explained += extra;
      }
      const feedReport = subscribers.map((subscriber) => {
        const missed = [...accepted.keys()].filter((id) => !subscriber.seen.has(id)).length;
        const twice = [...subscriber.seen.values()].filter((count) => count > 1).length;
        const seqRepeats = subscriber.seqs.length - new Set(subscriber.seqs).size;
        return { name: subscriber.name, received: subscriber.seen.size, missed, twice, seqRepeats };
      });
      console.log(
        `chaos: ${SECONDS} s, ${SHARDS > 1 ? `${SHARDS} shards per 1-minute partition, ` : ""}${kills.length} kills (SIGKILL, restart on the same state); ${accepted.size} tasks acknowledged, ` +
          `${pending.size} lost; ${repeats} repeated deliveries (${explained} by an attempt running at a kill); ` +
          feedReport
            .map(
              (feed) => `subscriber ${feed.name}: ${feed.received} results, ${feed.missed} missed, ${feed.twice} twice`,
            )
            .join("; "),
      );
      expect([...pending], gateway.output().slice(-3000)).toEqual([]);
      for (const feed of feedReport) expect(feed).toMatchObject({ missed: 0, twice: 0, seqRepeats: 0 });
      expect(kills.length).toBeGreaterThan(0);
    },
  );
});
