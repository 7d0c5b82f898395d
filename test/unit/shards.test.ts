// The pure parts of shards: ids that carry their shard, shard names by partition, the shard a submission
// picks, listings merged under one cursor, the limits a shard enforces, and a shard's reports to its app.
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/app-config";
import { mergePages, sumCounts } from "../../src/shards/app-wide";
import { pickShard, shardOfTask, shardPlace, storeNameOf, timeInside } from "../../src/shards/routing";
import { REPORT_RETRY_MS, ShardReports, type ShardResult } from "../../src/shards/shard-reports";
import { activeShards, shardConfig } from "../../src/shards/shard-sync";
import { appNumberOf, createdMsOf, newShardTaskId, newTaskId, shardRouteOf } from "../../src/shared/task-id";
import type { TaskRecord } from "../../src/shared/types";

const record = (id: string): TaskRecord => ({
  id,
  req_id: "r",
  app: "a",
  request: { method: "POST", path: "/", raw_query: "", header: {}, body: "" },
  created_at: 0,
  state: 10,
  attempts: 1,
  error: null,
});

describe("shard routing", () => {
  it("ids carry the app number, their time and their shard; ids of the app's own object carry none", () => {
    const at = Date.UTC(2026, 11, 3, 12, 34, 56, 789);
    const id = newShardTaskId(42, { partitionMinutes: 1440, shard: 63 }, at);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(appNumberOf(id)).toBe(42);
    expect(createdMsOf(id)).toBe(at);
    expect(shardRouteOf(id)).toEqual({ partitionMinutes: 1440, shard: 63 });
    expect(shardRouteOf(newTaskId(42, at))).toBeNull();
    expect(shardRouteOf("not an id")).toBeNull();
  });

  it("names a shard by app, partition start, length and index, and finds it again from a task id", () => {
    const at = Date.UTC(2026, 11, 3, 12, 34, 56);
    const place = shardPlace("myapp", 3600, 2, at);
    expect(place.name).toBe(`myapp/${Date.UTC(2026, 11, 3, 12) / 1000}/60/2`);
    expect(place.endMs - place.startMs).toBe(3_600_000);
    const id = newShardTaskId(1, place.route, timeInside(place, at));
    expect(shardOfTask("myapp", id)).toEqual(place);
    expect(storeNameOf("myapp", id)).toBe(place.name);
    expect(storeNameOf("myapp", newTaskId(1, at))).toBe("myapp");
    // A clock a little off from the Worker's: the id's time is held inside the partition, so it routes back.
    expect(shardOfTask("myapp", newShardTaskId(1, place.route, timeInside(place, place.endMs + 5)))!.name).toBe(
      place.name,
    );
    expect(shardOfTask("myapp", newShardTaskId(1, place.route, timeInside(place, place.startMs - 5)))!.name).toBe(
      place.name,
    );
  });

  it("sends a deduplication id to one shard, every time, and other tasks to any", () => {
    expect(new Set(Array.from({ length: 20 }, () => pickShard(8, "order-17"))).size).toBe(1);
    expect(new Set(Array.from({ length: 200 }, () => pickShard(8, null))).size).toBe(8);
    const spread = new Set(Array.from({ length: 200 }, (_, i) => pickShard(8, `order-${i}`)));
    expect(spread.size).toBe(8);
    expect(pickShard(1, "x")).toBe(0);
  });
});

describe("limits over shards", () => {
  it("spreads an app without limits, keeps one with a limit in its own object, and splits what shards still hold", () => {
    const config = { ...defaultConfig("a", "https://o.example"), shards: 4 };
    expect(activeShards(config)).toBe(4);
    const concurrent = { ...config, rate_limits: { ...config.rate_limits, max_concurrent_dispatches: 3 } };
    const rated = { ...config, rate_limits: { ...config.rate_limits, max_dispatches_per_second: 10 } };
    expect(activeShards(concurrent)).toBe(1);
    expect(activeShards(rated)).toBe(1);
    expect(shardConfig(concurrent).rate_limits.max_concurrent_dispatches).toBe(1);
    expect(shardConfig(rated).rate_limits.max_dispatches_per_second).toBe(2.5);
  });
});

describe("app-wide answers", () => {
  it("merges pages newest first under one cursor that bounds every source's next page", () => {
    const page = (ids: string[], more: boolean) => ({
      tasks: ids.map(record),
      cursor: more ? ids[ids.length - 1]! : null,
    });
    const merged = mergePages([page(["09", "05"], true), page(["08", "07", "01"], false), page([], false)], 3);
    expect(merged.tasks.map((task) => task.id)).toEqual(["09", "08", "07"]);
    expect(merged.cursor).toBe("07");
    expect(mergePages([page(["02"], false), page(["03"], false)], 3)).toEqual({
      tasks: [record("03"), record("02")],
      cursor: null,
    });
    expect(
      sumCounts([
        { waiting: 1, success: 2 },
        { success: 3, failed: 1 },
      ]),
    ).toEqual({
      waiting: 1,
      success: 5,
      failed: 1,
    });
  });
});

describe("a shard's reports to its app", () => {
  /** The app's side: keeps the latest seq taken, takes each result once; fails while `down`. */
  function home() {
    const state = { reported: 0, taken: [] as number[], calls: 0, down: false };
    const send = async (results: ShardResult[]) => {
      state.calls++;
      if (state.down) throw new Error("unreachable");
      for (const result of results) {
        if (result.seq <= state.reported) continue;
        state.taken.push(result.seq);
        state.reported = result.seq;
      }
      return { reported: state.reported };
    };
    return { state, send };
  }

  it("reports what a commit made in one call, and each result once", async () => {
    const { state, send } = home();
    const log: ShardResult[] = [];
    const reports = new ShardReports(send, (after) => ({ results: log.filter((r) => r.seq > after), done: true }));
    for (let seq = 1; seq <= 5; seq++) {
      log.push({ seq, record: record(`t${seq}`) });
      reports.add(seq, record(`t${seq}`));
    }
    await reports.flush();
    // One call to learn the app's mark (a new instance), one with the five results.
    expect(state.calls).toBe(2);
    expect(state.taken).toEqual([1, 2, 3, 4, 5]);
    log.push({ seq: 6, record: record("t6") });
    reports.add(6, record("t6"));
    await reports.flush();
    expect(state.calls).toBe(3);
    expect(reports.dueAt(1000, 6)).toBeNull();
  });

  it("takes back what a rolled-back group added", async () => {
    const { state, send } = home();
    const reports = new ShardReports(send, () => ({ results: [], done: true }));
    reports.add(1, record("t1"));
    const undo = reports.mark();
    reports.add(2, record("t2"));
    undo();
    await reports.flush();
    expect(state.taken).toEqual([1]);
  });

  it("after a failed report, catches up from its log, no gap and no duplicate, and retries no sooner than it should", async () => {
    const { state, send } = home();
    const log: ShardResult[] = [];
    const reports = new ShardReports(send, (after) => ({ results: log.filter((r) => r.seq > after), done: true }));
    const commit = (seq: number) => {
      log.push({ seq, record: record(`t${seq}`) });
      reports.add(seq, record(`t${seq}`));
    };
    commit(1);
    await reports.flush();
    state.down = true;
    commit(2);
    commit(3);
    await reports.flush();
    expect(state.taken).toEqual([1]);
    // The alarm tries again REPORT_RETRY_MS later, not in a loop.
    const now = Date.now();
    const due = reports.dueAt(now, 3)!;
    expect(due).toBeGreaterThanOrEqual(now + REPORT_RETRY_MS - 50);
    state.down = false;
    commit(4);
    await reports.flush();
    expect(state.taken).toEqual([1, 2, 3, 4]);
    expect(reports.dueAt(Date.now(), 4)).toBeNull();
  });

  it("a new instance (a wake-up) asks the app's mark and reports what the log holds after it", async () => {
    const { state, send } = home();
    state.reported = 2;
    const log = [1, 2, 3, 4].map((seq) => ({ seq, record: record(`t${seq}`) }));
    const reports = new ShardReports(send, (after) => ({ results: log.filter((r) => r.seq > after), done: true }));
    expect(reports.dueAt(1000, 4)).toBe(1000);
    await reports.flush();
    expect(state.taken).toEqual([3, 4]);
    expect(reports.dueAt(2000, 4)).toBeNull();
  });
});
