// Proves a group commit isolates each operation: one that cannot be stored fails alone, seqs stay consecutive, a full object is 507, an oversized result loses its body.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { appQueue } from "../../src/app/stubs";
import type { AttemptResult } from "../../src/shared/types";
import { CONTROL, call, createApp, finishParked, getTask, parkedTask, sql, submitInput, uniqueApp } from "./helpers";

describe("group commit isolation", () => {
  it("one submission that cannot be stored fails alone; the others of its group commit", async () => {
    const app = uniqueApp("iso");
    await createApp(app, { state: "Paused" });
    await sql(app)((storage) =>
      storage.exec(
        "CREATE TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.path = '/poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
      ),
    );
    const stub = appQueue(env, app);
    const input = (path: string) => submitInput(path);
    // Submitted in one turn: one group, one transaction.
    const [first, poisoned, last] = await Promise.all([
      stub.submit(input("/ok1")),
      stub.submit(input("/poison")),
      stub.submit(input("/ok2")),
    ]);
    expect(first.ok && last.ok).toBe(true);
    expect(poisoned).toMatchObject({ ok: false, error: { status: 503, code: "unavailable" } });
    if (first.ok && last.ok) {
      expect((await getTask(first.value.id)).request.path).toBe("/ok1");
      expect((await getTask(last.value.id)).request.path).toBe("/ok2");
    }
    // The rolled-back submission's count change was undone with it.
    const { stats } = (await (await call(`${CONTROL}/v1/apps/${app}`)).json()) as { stats: Record<string, number> };
    expect(stats["waiting"]).toBe(2);
  });

  it("submissions in one group to an object that is no app are each answered 404 app_not_found (none fails on the tables it does not have)", async () => {
    const stub = appQueue(env, uniqueApp("noapp"));
    // Submitted in one turn: one group of three, each in its own savepoint.
    const outcomes = await Promise.all([1, 2, 3].map((i) => stub.submit(submitInput(`/none/${i}`))));
    expect(
      outcomes.map((outcome) => (outcome.ok ? "accepted" : `${outcome.error.status} ${outcome.error.code}`)),
    ).toEqual(["404 app_not_found", "404 app_not_found", "404 app_not_found"]);
  });

  it("seqs handed out in a group stay consecutive, also when one finish in it is undone", async () => {
    const app = uniqueApp("seqgroup");
    await createApp(app);
    const stub = appQueue(env, app);
    const ok: AttemptResult = { kind: "response", status: 200, header: {}, body: new Uint8Array() };
    const ids = [await parkedTask(app, "/a"), await parkedTask(app, "/poison"), await parkedTask(app, "/c")];
    const attempts: number[] = [];
    for (const id of ids) {
      const begun = await stub.begin(id);
      if (!begun.run) throw new Error(begun.reason);
      attempts.push(begun.delivery.attempt);
    }
    const before = await sql(app)((_storage, instance) => instance.tasks.currentSeq());
    await sql(app)((storage) =>
      storage.exec(
        "CREATE TRIGGER poison BEFORE UPDATE OF state ON tasks WHEN NEW.path = '/poison' AND NEW.state = 10 BEGIN SELECT RAISE(ABORT, 'poisoned finish'); END",
      ),
    );
    // One turn: one group, one transaction, a savepoint each.
    await Promise.allSettled(ids.map((id, i) => stub.finish(id, attempts[i]!, ok)));
    const seqs = await sql(app)((storage) =>
      storage.exec<{ path: string; seq: number | null }>("SELECT path, seq FROM tasks ORDER BY path").toArray(),
    );
    // The latest seq as the object keeps it (in memory, checkpointed by time: task-counts.ts).
    const meta = await sql(app)((_storage, instance) => instance.tasks.currentSeq());
    expect(seqs.find((row) => row.path === "/poison")!.seq).toBeNull();
    expect(
      seqs
        .filter((row) => row.path !== "/poison")
        .map((row) => row.seq)
        .sort(),
    ).toEqual([before + 1, before + 2]);
    expect(meta).toBe(before + 2);
    // The next result continues from there: no seq handed out twice, none skipped.
    await sql(app)((storage) => storage.exec("DROP TRIGGER poison"));
    const next = await finishParked(app, "/d");
    expect((await getTask(next)) as unknown as { state: number }).toMatchObject({ state: 10 });
    const last = await sql(app)(
      (storage) => storage.exec<{ seq: number }>("SELECT seq FROM tasks WHERE id = ?", next).one().seq,
    );
    expect(last).toBe(before + 3);
  });

  it("a full object answers 507 storage_full, not a retry", async () => {
    const app = uniqueApp("full");
    await createApp(app);
    await sql(app)((storage) =>
      storage.exec(
        "CREATE TRIGGER full BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'SQLITE_FULL: database or disk is full'); END",
      ),
    );
    const response = await call(`http://${app}.async.localhost/x`, { body: "{}" });
    expect(response.status).toBe(507);
    expect(await response.json()).toMatchObject({ code: "storage_full" });
  });

  it("a result that cannot be stored whole is stored without its body: the attempt counts, the task moves on", async () => {
    const app = uniqueApp("fin");
    await createApp(app);
    await sql(app)((storage) =>
      storage.exec(
        "CREATE TRIGGER toolarge BEFORE UPDATE OF response_body ON tasks WHEN length(NEW.response_body) > 0 BEGIN SELECT RAISE(ABORT, 'row too big'); END",
      ),
    );
    const stub = appQueue(env, app);
    const id = await parkedTask(app);
    await stub.begin(id);
    expect(
      await stub.finish(id, 1, { kind: "response", status: 201, header: { "X-A": ["1"] }, body: new Uint8Array(10) }),
    ).toEqual({ applied: true, state: 10 });
    const task = await getTask(id);
    expect(task).toMatchObject({ state: 10, attempts: 1, response: { status_code: 201, body: "" } });
    // Written once in the end: the statistics count the attempt once.
    const stats = (await (await call(`${CONTROL}/v1/apps/${app}/stats`)).json()) as {
      last_hour: { attempts: number; successes: number };
    };
    expect(stats.last_hour).toEqual({ attempts: 1, successes: 1 });
  });
});
