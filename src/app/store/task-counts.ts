/**
 * Task counts by state, the latest result seq and the newest task id, kept in memory and
 * checkpointed by time (a row at most every 10 s while tasks move), not written with every
 * group commit. After a restart they are rebuilt from the checkpoint and what the table says
 * happened since: tasks inserted after the checkpoint's newest id (ids only grow: see
 * {@link TaskCounts.nextId}) and results numbered after its seq (a range of tasks_by_seq) — the
 * only changes a checkpoint may miss. Every other change (deletions, a failed task made to wait
 * again) writes the checkpoint in its own transaction. Reads cost a thousandth of writes.
 */
import { createdMsOf, newShardTaskId, newTaskId, shardIdPrefix, type ShardRoute } from "../../shared/task-id";
import type { TaskState } from "../../shared/types";
import type { StoredOut } from "./messages-out";
import type { MetaStore } from "./meta";
import { type LogEntry, ResultsLog, TAIL_FLUSH_ENTRIES } from "./results-log";

/** The states a row can be in: running attempts are kept in memory (running.ts), their rows wait. */
type RowState = 0 | 10 | 11;

/** What the meta row "task_counts" holds. */
export interface CountsCheckpoint {
  counts: Record<RowState, number>;
  /** The latest result seq handed out. */
  seq: number;
  /** The newest task id ("" before the first). */
  lastId: string;
  /** Queue messages sent again (a statistic: re-sends since the last checkpoint may go uncounted after a crash). */
  resends: number;
  /**
   * The tasks with a queue message out or an attempt running when it was written (kept in
   * memory: see TaskStore): after a restart they are taken as sent then, not sent again at once.
   */
  out?: StoredOut;
}

export const CHECKPOINT_KEY = "task_counts";
/** At most one checkpoint per this long while tasks move (and at the alarm). */
export const CHECKPOINT_EVERY_MS = 10_000;

const emptyCheckpoint = (): CountsCheckpoint => ({ counts: { 0: 0, 10: 0, 11: 0 }, seq: 0, lastId: "", resends: 0 });

export class TaskCounts {
  readonly #sql: SqlStorage;
  readonly #meta: MetaStore;
  /** What is true now (null: rebuild it on first use). */
  #now: CountsCheckpoint | null = null;
  /**
   * A snapshot of {@link #now} when the open batch (a group commit) began; "unread" when it was
   * not read yet then (nothing to snapshot: a rollback reads it afresh); null: no batch.
   */
  #batchStart: CountsCheckpoint | "unread" | null = null;
  /** {@link #writtenFrom} when the open batch began (a checkpoint written in it may roll back). */
  #batchWrittenFrom: string | null = null;
  /** Changes since the last checkpoint that the table alone would tell (inserts, results). */
  #dirty = false;
  /** A change the table would not tell (a deletion, a retry) waits for the batch's end to be written. */
  #mustWrite = false;
  #checkpointedAt = 0;
  /** What was known before {@link forget}: what the table cannot tell is carried over. */
  #forgotten: CountsCheckpoint | null = null;

  readonly #out: () => Omit<StoredOut, "at">;

  /** The results in seq order (results-log.ts): its tail is written with each checkpoint. */
  readonly log: ResultsLog;

  /**
   * The waiting bound of the last checkpoint written (StoredOut.from): a restart finds the results
   * numbered since by a scan from it, so finishing a task below it writes the checkpoint at once.
   */
  #writtenFrom: string | null = null;

  /**
   * @param out the tasks with a queue message out or an attempt running, and the lowest id a near
   * waiting task may have, written with each checkpoint
   */
  constructor(sql: SqlStorage, meta: MetaStore, out: () => Omit<StoredOut, "at">) {
    this.#sql = sql;
    this.#meta = meta;
    this.#out = out;
    this.log = new ResultsLog(sql, () => this.ensure());
  }

  /** The stored checkpoint as last read (undefined: read it again; a write or a forget makes it stale). */
  #stored: CountsCheckpoint | null | undefined = undefined;

  /** The stored checkpoint: one read at a wake-up serves the rebuild and the store's marks. */
  #storedCheckpoint(): CountsCheckpoint | null {
    if (this.#stored === undefined) {
      const stored = this.#meta.get(CHECKPOINT_KEY);
      this.#stored = stored ? (JSON.parse(stored) as CountsCheckpoint) : null;
    }
    return this.#stored;
  }

  /** What the last checkpoint said was out (asked once per wake-up, by the store). */
  storedOut(): StoredOut | null {
    return this.#storedCheckpoint()?.out ?? null;
  }

  /** What is true now, rebuilt from the checkpoint and the table on first use after a wake-up. */
  #state(): CountsCheckpoint {
    this.#now ??= this.#rebuild();
    return this.#now;
  }

  #rebuild(): CountsCheckpoint {
    const checkpoint = this.#storedCheckpoint() ?? emptyCheckpoint();
    const { out, ...state } = structuredClone(checkpoint);
    this.#writtenFrom = out?.from ?? "";
    // Re-sends are not in the table: those counted since the checkpoint are carried over.
    if (this.#forgotten) state.resends = Math.max(state.resends, this.#forgotten.resends);
    this.#forgotten = null;
    // Results numbered since: every task unfinished at the checkpoint had an id at or above its
    // waiting bound (but parked ones, whose finish wrote a checkpoint). Those that waited then
    // move from waiting to their state (newer ones are counted below); all go back to the log's tail.
    const since: LogEntry[] = [];
    for (const row of this.#sql.exec<{ id: string; state: RowState; seq: number }>(
      "SELECT id, state, seq FROM tasks WHERE id >= ? AND seq > ?",
      this.#writtenFrom,
      checkpoint.seq,
    )) {
      since.push({ seq: row.seq, id: row.id });
      state.seq = Math.max(state.seq, row.seq);
      if (row.id <= checkpoint.lastId) {
        state.counts[0]--;
        state.counts[row.state]++;
      }
    }
    this.log.restore(since);
    // Tasks inserted since, in the state they are in now.
    for (const row of this.#sql.exec<{ state: RowState; n: number; last: string }>(
      "SELECT state, COUNT(*) AS n, MAX(id) AS last FROM tasks WHERE id > ? GROUP BY state",
      checkpoint.lastId,
    )) {
      state.counts[row.state] = (state.counts[row.state] ?? 0) + row.n;
      if (row.last > state.lastId) state.lastId = row.last;
    }
    return state;
  }

  /** Reads what is true now, if not known yet: before a write it will be told of (a rebuild after it would count it twice). */
  ensure(): void {
    this.#state();
  }

  // ---- what the store tells it -----------------------------------------------------------

  /**
   * `n` tasks moved from row state `from` to `to` (null: inserted / deleted). A deletion, or a
   * finished task waiting again, is written at once (or at the batch's end): the table would not
   * tell it after a restart.
   */
  moved(from: TaskState | null, to: TaskState | null, n = 1): void {
    if (from === to || n === 0) return;
    const { counts } = this.#state();
    if (from !== null) counts[from as RowState] -= n;
    if (to !== null) counts[to as RowState] += n;
    if (to === null || (from !== null && from !== 0)) this.#writeSoon();
    else this.#dirty = true;
  }

  /** A change the table would not tell after a restart: the checkpoint is written at the batch's end, or at once. */
  #writeSoon(): void {
    if (this.#batchStart) this.#mustWrite = true;
    else this.#write();
  }

  /**
   * A task id for a task created at `nowMs` (in shard `route`, for a shard object, no later than
   * `maxMs`), above every id handed out (so a rebuild finds what came after a checkpoint).
   */
  nextId(appNumber: number, nowMs: number, route: ShardRoute | null = null, maxMs = Infinity): string {
    const last = this.#state().lastId;
    const idAt = (ms: number) => (route ? newShardTaskId(appNumber, route, ms) : newTaskId(appNumber, ms));
    const id = idAt(nowMs);
    if (id > last) return id;
    // Within the newest id's millisecond (the clock stands still between I/O) or behind it (a
    // clock step back): the newest id's random part, plus a random step, in its millisecond (ids
    // keep their time); past the end of that millisecond's range, the next millisecond.
    const lastMs = createdMsOf(last);
    if (!Number.isFinite(lastMs)) return id;
    const prefix = route ? shardIdPrefix(appNumber, route, lastMs) : newTaskId(appNumber, lastMs).slice(0, 20);
    const digits = 32 - prefix.length;
    const suffix = last.startsWith(prefix) ? Number.parseInt(last.slice(prefix.length), 16) : -1;
    const next = suffix + 1 + Math.floor(Math.random() * (route ? 0x100 : 0x10000));
    if (suffix >= 0 && next < 16 ** digits) return prefix + next.toString(16).padStart(digits, "0");
    // Past its partition's end an id would route to the next partition's shard: the submission
    // fails instead (503, retried by its client, then in the next partition).
    if (lastMs + 1 > maxMs) throw new Error("no task id left in this partition's last millisecond");
    return idAt(lastMs + 1);
  }

  /** A task with this id was inserted (ids only grow). */
  inserted(id: string): void {
    const state = this.#state();
    if (id > state.lastId) state.lastId = id;
  }

  currentSeq(): number {
    return this.#state().seq;
  }

  /**
   * The next result sequence number (SPEC §6), strictly increasing per app: task `id`'s result
   * (`untold`: a result the tasks table does not hold, a shard's).
   */
  nextSeq(id: string, untold = false): number {
    const state = this.#state();
    state.seq++;
    this.#dirty = true;
    this.log.append(state.seq, id);
    // Below the checkpoint's waiting bound (a parked task), a restart's scan would not find it,
    // nor a result of a task in another object (`untold`); a long tail is written before its row
    // grows too large.
    if (untold || id < this.#writtenFrom! || this.log.tailLength >= TAIL_FLUSH_ENTRIES) this.#writeSoon();
    return state.seq;
  }

  /** Seqs continue from `seq` (a re-created app never hands out seqs below its predecessor's): written at once. */
  setSeq(seq: number): void {
    this.#state().seq = seq;
    this.#write();
  }

  resent(n: number): void {
    if (n === 0) return;
    this.#state().resends += n;
    this.#dirty = true;
  }

  /** Counts by row state, and re-sends. */
  snapshot(): Readonly<CountsCheckpoint> {
    return this.#state();
  }

  // ---- batches (a group commit) and checkpoints ------------------------------------------

  openBatch(): void {
    // Not read here: an object that is no app has no tables, and a group may find no app.
    this.#batchStart = this.#now ? structuredClone(this.#now) : "unread";
    this.#mustWrite = false;
    this.#batchWrittenFrom = this.#writtenFrom;
    this.log.openBatch();
  }

  /** The batch's last writes (inside its transaction): the checkpoint, when one is due. */
  closeBatch(nowMs: number): void {
    if (this.#mustWrite || this.#due(nowMs)) this.#write(nowMs);
    this.#mustWrite = false;
  }

  /** The batch's transaction committed: what it changed stands. */
  commitBatch(): void {
    this.#batchStart = null;
    this.log.commitBatch();
  }

  /** The batch rolled back: what it changed never happened. */
  discardBatch(): void {
    if (this.#batchStart) this.#now = this.#batchStart === "unread" ? null : this.#batchStart;
    this.#batchStart = null;
    this.#writtenFrom = this.#batchWrittenFrom;
    this.log.discardBatch();
    this.#mustWrite = false;
    this.#dirty = true; // a checkpoint written in the batch was rolled back with it
  }

  /** A savepoint inside the batch: calling the answer undoes what came after it. */
  mark(): () => void {
    // Not read here either (see openBatch): unread, a rollback leaves it unread.
    const snapshot = this.#now ? structuredClone(this.#now) : null;
    const undoLog = this.log.mark();
    return () => {
      this.#now = snapshot;
      undoLog();
    };
  }

  /** Writes the checkpoint when one is due (or at once: `now`), outside a batch (the alarm). */
  checkpoint(nowMs: number, now = false): void {
    if (!this.#batchStart && (now || this.#due(nowMs))) this.#write(nowMs);
  }

  /** Something changed since the last checkpoint, at least CHECKPOINT_EVERY_MS ago. */
  #due(nowMs: number): boolean {
    return this.#dirty && nowMs - this.#checkpointedAt >= CHECKPOINT_EVERY_MS;
  }

  #write(nowMs = Date.now()): void {
    const out = this.#out();
    const checkpoint: CountsCheckpoint = { ...this.#state(), out: { at: nowMs, ...out } };
    this.#meta.set(CHECKPOINT_KEY, JSON.stringify(checkpoint));
    // The results numbered since the last checkpoint, as one row (a restart finds later ones).
    this.log.flush();
    this.#writtenFrom = out.from ?? "";
    this.#stored = undefined;
    this.#dirty = false;
    this.#checkpointedAt = nowMs;
  }

  /** Rebuild on next use (another store wrote to the table: tests). */
  forget(): void {
    this.#stored = undefined;
    this.#forgotten = this.#now ?? this.#forgotten;
    this.#now = null;
  }
}
