/**
 * The live feed (SPEC §6): the WebSocket upgrade of `GET /v1/tasks?app=…[&since=<seq>]`, and
 * the resume replay that sends, in seq order, every result after `since` still kept before the
 * socket sees a live one, paced by the subscriber's acknowledgements (flow-control.ts). The
 * sockets themselves (hibernation, heartbeats, what is unacknowledged) are subscribers.ts's.
 */
import type { AppConfig } from "../config/app-config";
import { errorBody } from "../http/errors";
import { log } from "../shared/log";
import { REPLAY_WINDOW_BYTES } from "./flow-control";
import type { AppStore, RemoteResult, TaskRow } from "./store";
import { toRecord } from "./store";
import type { TaskRecord } from "../shared/types";
import type { Subscribers } from "./subscribers";

/** Set by the Worker on the upgrade it hands the object: the access key that opened the feed (none for the admin). */
export const OPENED_BY_HEADER = "asyncgate-opened-by";

export class Feed {
  readonly #subscribers: Subscribers;
  readonly #store: () => AppStore;
  /** The app's config now (null once it is deleted): a replay page in a later turn asks again. */
  readonly #config: () => AppConfig | null;
  /**
   * Sockets whose next replay page is already scheduled (a timer): an ACK meanwhile must not
   * start a second one. Memory is enough: an object with a timer pending is not hibernated.
   */
  readonly #scheduled = new WeakSet<WebSocket>();

  /** The records of results a shard object holds (null: gone, or no longer that result). */
  readonly #shardRecords: (refs: RemoteResult[]) => Promise<(TaskRecord | null)[]>;

  constructor(
    subscribers: Subscribers,
    store: () => AppStore,
    config: () => AppConfig | null,
    shardRecords: (refs: RemoteResult[]) => Promise<(TaskRecord | null)[]>,
  ) {
    this.#subscribers = subscribers;
    this.#store = store;
    this.#config = config;
    this.#shardRecords = shardRecords;
  }

  /**
   * Upgrades an authenticated request (the Worker checked it). Over `max_subscribers` it answers
   * 429 before upgrading. With `since`, every later result still kept is replayed in seq order
   * before the socket can see a live one: its first page is sent in this turn, and live results
   * skip the socket until the last (no gap, no duplicate).
   */
  upgrade(request: Request, now: number): Response {
    const reqId = request.headers.get("x-reqid") ?? "";
    const error = (status: number, code: string, message: string) =>
      new Response(errorBody({ code, message }, reqId), { status, headers: { "Content-Type": "application/json" } });
    const config = this.#config();
    if (!config) return error(404, "app_not_found", "no such app");
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return error(426, "upgrade_required", "expected a WebSocket upgrade");
    }
    if (this.#subscribers.open().length >= config.max_subscribers) {
      return error(429, "too_many_subscribers", `app ${config.name} already has ${config.max_subscribers} subscribers`);
    }
    const params = new URL(request.url).searchParams;
    const sinceText = params.get("since");
    const since = sinceText === null ? null : Number(sinceText);
    const { client, server } = this.#subscribers.accept(now, request.headers.get(OPENED_BY_HEADER));
    // Qiniu's feed sends task records and nothing else. A client that resumes (since=) or asks
    // (hello=1) first gets the latest seq so far, so it knows where a later resume starts.
    if (since !== null || params.get("hello") === "1") {
      const hello = { type: "hello", app: config.name, seq: this.#store().tasks.currentSeq() };
      this.#subscribers.send(server, JSON.stringify(hello));
    }
    if (since !== null) this.#replayPage(server, since);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A frame from a subscriber (the hibernation API's webSocketMessage); a failure closes it with 1011. */
  message(ws: WebSocket, message: string | ArrayBuffer, now: number): void {
    try {
      this.onMessage(ws, message, now);
    } catch (error) {
      log("error", "websocket_message_failed", { app: this.#config()?.name }, error);
      this.#subscribers.onClose(ws, 1011, "internal error");
    }
  }

  /** The client closed (webSocketClose): the handshake completed. */
  closed(ws: WebSocket, code: number, reason: string): void {
    try {
      this.#subscribers.onClose(ws, code, reason);
    } catch (error) {
      log("error", "websocket_close_failed", { app: this.#config()?.name }, error);
    }
  }

  /** The socket failed (webSocketError). */
  failed(ws: WebSocket, error: unknown): void {
    log("warn", "websocket_error", { app: this.#config()?.name }, error);
    this.#subscribers.onClose(ws, 1011, "websocket error");
  }

  /**
   * A frame from a subscriber (subscribers.ts). An acknowledgement that brings a paused
   * replay's unacknowledged bytes under the window sends its next page, in this turn.
   */
  onMessage(ws: WebSocket, message: string | ArrayBuffer, now: number): void {
    if (!this.#subscribers.onMessage(ws, message, now)) return;
    const after = this.#subscribers.replayAfter(ws);
    if (after === null || this.#scheduled.has(ws)) return;
    if (this.#subscribers.unackedBytes(ws) < REPLAY_WINDOW_BYTES) this.#replayPage(ws, after);
  }

  /**
   * Sends one page of the results after `after`, read up to what the replay window has left
   * (at least one row), so a resume over days of results never holds them all in memory.
   * The next page follows in a later turn while the subscriber's unacknowledged bytes stay
   * under REPLAY_WINDOW_BYTES, else when its ACK brings them under (onMessage), however long
   * that takes, across hibernation too. Live results skip the socket meanwhile; the page that
   * finds nothing more is read in the same turn as the socket goes live, so nothing can
   * finish in between: no gap, no duplicate.
   */
  #replayPage(ws: WebSocket, after: number): void {
    const config = this.#config();
    if (!config) return;
    const budget = Math.max(1, REPLAY_WINDOW_BYTES - this.#subscribers.unackedBytes(ws));
    const { rows, remote, done } = this.#store().reads.finishedSince(after, budget);
    if (remote.length > 0) return this.#replayWithShards(ws, after, rows, remote);
    let last = after;
    for (const row of rows) {
      const seq = row.seq ?? last;
      if (!this.#subscribers.sendResult(ws, seq, JSON.stringify({ ...toRecord(row, config.name), seq }))) {
        this.#subscribers.goLive(ws); // gone, or closed as too slow: nothing to continue
        return;
      }
      last = seq;
    }
    if (done) return this.#subscribers.goLive(ws);
    this.#subscribers.holdLive(ws, last);
    if (this.#subscribers.unackedBytes(ws) >= REPLAY_WINDOW_BYTES) return; // paused until an ACK
    this.#scheduled.add(ws);
    setTimeout(() => {
      this.#scheduled.delete(ws);
      try {
        this.#replayPage(ws, last);
      } catch (error) {
        this.#replayFailed(ws, error);
      }
    }, 0);
  }

  /**
   * A page with results of an app's shards: their records are fetched from the shards (live
   * results skip the socket meanwhile), then the page is sent in seq order, and the next page is
   * read right after (in the turn the records arrived) — never gone live from a page read before
   * the wait, so a result numbered meanwhile is read, not missed.
   */
  #replayWithShards(ws: WebSocket, after: number, rows: TaskRow[], remote: RemoteResult[]): void {
    this.#subscribers.holdLive(ws, after);
    this.#scheduled.add(ws);
    const fetched = this.#shardRecords(remote).then((records) => {
      this.#scheduled.delete(ws);
      const config = this.#config();
      if (!config) return;
      const page = [
        ...rows.map((row) => ({ seq: row.seq!, record: toRecord(row, config.name) })),
        ...remote.flatMap((ref, i) => (records[i] ? [{ seq: ref.seq, record: records[i] }] : [])),
      ].sort((a, b) => a.seq - b.seq);
      for (const { seq, record } of page) {
        if (!this.#subscribers.sendResult(ws, seq, JSON.stringify({ ...record, seq })))
          return this.#subscribers.goLive(ws);
      }
      const last = Math.max(after, ...rows.map((row) => row.seq!), ...remote.map((ref) => ref.seq));
      this.#subscribers.holdLive(ws, last);
      if (this.#subscribers.unackedBytes(ws) < REPLAY_WINDOW_BYTES) this.#replayPage(ws, last);
    });
    fetched.catch((error: unknown) => {
      this.#scheduled.delete(ws);
      this.#replayFailed(ws, error);
    });
  }

  #replayFailed(ws: WebSocket, error: unknown): void {
    log("error", "replay_failed", { app: this.#config()?.name }, error);
    this.#subscribers.goLive(ws);
    this.#subscribers.onClose(ws, 1011, "replay failed");
  }
}
