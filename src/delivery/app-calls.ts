/**
 * How the consumer reaches an app's object around an attempt: `begin` before it, `finish` after
 * it (and the same for notifications). Directly (one RPC each), or batched for a consumer batch:
 * begins asked within one turn go as one RPC, and finishes as one once every running attempt of
 * the app has reported, or after at most FINISH_WAIT_MS, FINISH_BATCH results or
 * FINISH_BATCH_BYTES of response bodies. The object runs each item as it would alone (attempt
 * keyed, idempotent, each in its own savepoint of one group commit), so batching changes the
 * RPC count, not what any begin or finish does.
 */
import type {
  AttemptReport,
  AttemptResult,
  BeginResult,
  FinishResult,
  NotificationDelivery,
  NotificationRef,
  NotificationReport,
  PutBack,
} from "../shared/types";

export interface TaskCalls {
  /** Begins the task's next attempt; `run` names this begin for a put-back (see PutBack). */
  begin(taskId: string, run?: string): Promise<BeginResult>;
  /** The end of an attempt begun here: its result, or the attempt given back. */
  finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult>;
  /** Gives back whatever a begin whose answer was lost may have begun (nothing counted as running here). */
  putBackUnanswered(taskId: string, run: string): Promise<FinishResult>;
}

export interface NotificationCalls {
  beginNotification(taskId: string, kind: NotificationRef["kind"]): Promise<NotificationDelivery | null>;
  finishNotification(
    taskId: string,
    kind: NotificationRef["kind"],
    attempt: number,
    delivered: boolean,
    detail: string,
  ): Promise<void>;
}

/** What the batcher needs of an app's object stub. */
export interface BatchTarget {
  beginMany(taskIds: string[], runs: (string | null)[]): Promise<BeginResult[]>;
  finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]>;
  beginNotifications(refs: NotificationRef[]): Promise<(NotificationDelivery | null)[]>;
  finishNotifications(reports: NotificationReport[]): Promise<boolean[]>;
}

export const FINISH_WAIT_MS = 20;
export const FINISH_BATCH = 50;
/** Response bodies carried by one finishMany: far under an RPC's size limit. */
export const FINISH_BATCH_BYTES = 8 * 1024 * 1024;

/** An item of a batched call whose own answer said it could not be stored. */
export class NotStored extends Error {
  override name = "NotStored";
}

/** Items gathered for one RPC; each caller gets its item's answer. */
class Batch<Item, Answer> {
  readonly #send: (items: Item[]) => Promise<Answer[]>;
  #items: { item: Item; resolve(answer: Answer): void; reject(error: unknown): void }[] = [];
  #weight = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(send: (items: Item[]) => Promise<Answer[]>) {
    this.#send = send;
  }

  get size(): number {
    return this.#items.length;
  }

  get weight(): number {
    return this.#weight;
  }

  add(item: Item, weight = 0): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.#items.push({ item, resolve, reject });
      this.#weight += weight;
    });
  }

  /** Sends at the latest after `ms` (0: at the end of this turn). */
  flushWithin(ms: number): void {
    this.#timer ??= setTimeout(() => this.flush(), ms);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const items = this.#items;
    this.#items = [];
    this.#weight = 0;
    if (items.length === 0) return;
    // Through a promise: a send that throws at once (an argument that cannot be serialised)
    // rejects its items like any failed send, and no caller is left waiting.
    Promise.resolve(items.map(({ item }) => item))
      .then(this.#send)
      .then(
        (answers) => items.forEach(({ resolve }, i) => resolve(answers[i]!)),
        (error: unknown) => items.forEach(({ reject }) => reject(error)),
      );
  }
}

export class BatchedCalls implements TaskCalls, NotificationCalls {
  readonly #begins: Batch<{ taskId: string; run: string | null }, BeginResult>;
  readonly #finishes: Batch<AttemptReport, FinishResult | null>;
  readonly #notificationBegins: Batch<NotificationRef, NotificationDelivery | null>;
  readonly #notificationFinishes: Batch<NotificationReport, boolean>;
  /** Attempts (of tasks and notifications) begun through here whose end has not been reported yet. */
  #running = 0;

  /**
   * @param connect the app's object stub; asked again after a call failed, since a stub that saw
   * the object reset may stay broken.
   */
  constructor(connect: () => BatchTarget) {
    let target: BatchTarget | null = null;
    const via =
      <Item, Answer>(call: (target: BatchTarget, items: Item[]) => Promise<Answer[]>) =>
      async (items: Item[]): Promise<Answer[]> => {
        target ??= connect();
        try {
          return await call(target, items);
        } catch (error) {
          target = null;
          throw error;
        }
      };
    this.#begins = new Batch(
      via((stub, begins: { taskId: string; run: string | null }[]) =>
        stub.beginMany(
          begins.map(({ taskId }) => taskId),
          begins.map(({ run }) => run),
        ),
      ),
    );
    this.#finishes = new Batch(via((stub, reports: AttemptReport[]) => stub.finishMany(reports)));
    this.#notificationBegins = new Batch(via((stub, refs: NotificationRef[]) => stub.beginNotifications(refs)));
    this.#notificationFinishes = new Batch(
      via((stub, reports: NotificationReport[]) => stub.finishNotifications(reports)),
    );
  }

  async begin(taskId: string, run?: string): Promise<BeginResult> {
    const begun = this.#begins.add({ taskId, run: run ?? null });
    this.#begins.flushWithin(0);
    const answer = (await begun) ?? { run: false, reason: "error" };
    if (answer.run) this.#running++;
    return answer;
  }

  async finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult> {
    const answer = this.#ended(
      this.#finishes,
      { taskId, attempt, result },
      result.kind === "response" ? result.body.byteLength : 0,
    );
    const finished = await answer;
    if (!finished) throw new NotStored(`finish of ${taskId} attempt ${attempt} was not stored`);
    return finished;
  }

  async putBackUnanswered(taskId: string, run: string): Promise<FinishResult> {
    const answer = this.#finishes.add({ taskId, attempt: 0, result: { kind: "put_back", run, reason: "begin_lost" } });
    // Its neighbours' begins were lost in the same call: they join it within this turn.
    this.#finishes.flushWithin(0);
    const finished = await answer;
    if (!finished) throw new NotStored(`put-back of ${taskId} was not stored`);
    return finished;
  }

  async beginNotification(taskId: string, kind: NotificationRef["kind"]): Promise<NotificationDelivery | null> {
    const begun = this.#notificationBegins.add({ taskId, kind });
    this.#notificationBegins.flushWithin(0);
    const delivery = await begun;
    if (delivery) this.#running++;
    return delivery;
  }

  async finishNotification(
    taskId: string,
    kind: NotificationRef["kind"],
    attempt: number,
    delivered: boolean,
    detail: string,
  ): Promise<void> {
    const stored = await this.#ended(this.#notificationFinishes, { taskId, kind, attempt, delivered, detail }, 0);
    if (!stored) throw new NotStored(`the end of notification ${kind} of ${taskId} attempt ${attempt} was not stored`);
  }

  /** Sends every end gathered so far now. */
  flush(): void {
    this.#finishes.flush();
    this.#notificationFinishes.flush();
  }

  /** An attempt ended: its report waits for the others running, within the bounds. */
  #ended<Item, Answer>(batch: Batch<Item, Answer>, item: Item, bytes: number): Promise<Answer> {
    this.#running = Math.max(0, this.#running - 1);
    const answer = batch.add(item, bytes);
    // Nothing else is running: no other result could join, so waiting would only add latency.
    if (this.#running === 0 || batch.size >= FINISH_BATCH || batch.weight >= FINISH_BATCH_BYTES) this.flush();
    else batch.flushWithin(FINISH_WAIT_MS);
    return answer;
  }
}
