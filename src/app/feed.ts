/**
 * The live feed (SPEC §6): the WebSocket upgrade of `GET /v1/tasks?app=…[&since=<seq>]`, and
 * the resume replay that sends, in seq order, every result after `since` still kept before the
 * socket sees a live one. The sockets themselves (hibernation, heartbeats) are subscribers.ts's.
 */
import type { AppConfig } from "../config/app-config";
import { errorBody } from "../http/errors";
import { log } from "../shared/log";
import type { AppStore } from "./store";
import { toRecord } from "./store";
import type { Subscribers } from "./subscribers";

/** Set by the Worker on the upgrade it hands the object: the access key that opened the feed (none for the admin). */
export const OPENED_BY_HEADER = "asyncgate-opened-by";

export class Feed {
  readonly #subscribers: Subscribers;
  readonly #store: () => AppStore;
  /** The app's config now (null once it is deleted): a replay page in a later turn asks again. */
  readonly #config: () => AppConfig | null;

  constructor(subscribers: Subscribers, store: () => AppStore, config: () => AppConfig | null) {
    this.#subscribers = subscribers;
    this.#store = store;
    this.#config = config;
  }

  /**
   * Upgrades an authenticated request (the Worker checked it). Over `max_subscribers` it answers
   * 429 before upgrading. With `since`, every later result still kept is replayed in seq order
   * before the socket can see a live one: the replay runs synchronously, so no result can finish
   * in between (no gap, no duplicate).
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

  /**
   * Sends one page (≤ REPLAY_PAGE_BYTES read) of the results after `after`, then the next
   * page in a later turn, so a resume over days of results never holds them all in memory.
   * Live results skip the socket meanwhile; the page that finds nothing more is read in the
   * same turn as the socket goes live, so nothing can finish in between: no gap, no duplicate.
   */
  #replayPage(ws: WebSocket, after: number): void {
    const config = this.#config();
    if (!config) return;
    const { rows, done } = this.#store().reads.finishedSince(after);
    let last = after;
    for (const row of rows) {
      if (!this.#subscribers.send(ws, JSON.stringify({ ...toRecord(row, config.name), seq: row.seq }))) {
        this.#subscribers.goLive(ws); // gone: nothing to continue
        return;
      }
      last = row.seq ?? last;
    }
    if (done) return this.#subscribers.goLive(ws);
    this.#subscribers.holdLive(ws);
    setTimeout(() => {
      try {
        this.#replayPage(ws, last);
      } catch (error) {
        log("error", "replay_failed", { app: this.#config()?.name }, error);
        this.#subscribers.goLive(ws);
        this.#subscribers.onClose(ws, 1011, "replay failed");
      }
    }, 0);
  }
}
