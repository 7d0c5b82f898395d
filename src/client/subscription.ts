/**
 * `subscribe()`: the live result feed as an async iterator. It heartbeats (`OK` every
 * 10 s, under the server's 15 s limit), reconnects with full-jitter backoff, and resumes
 * with `since=<last seq seen>`, dropping anything at or below it: across reconnects the
 * consumer of the iterator sees every result exactly once, in seq order.
 *
 * It acknowledges what the consumer has taken (`ACK <seq>`, the feed's flow control): the
 * server closes a subscriber with 8 MiB unacknowledged (4413, after which this resumes) and
 * sends a resume replay's next page only under 1 MiB, so a consumer slower than the network
 * holds the feed back instead of being buried.
 */
import type { TaskRecord } from "../shared/types";

/**
 * Consumed results are acknowledged at once when their frames reach this many bytes: a quarter
 * of the server's 1 MiB replay window, so a paused replay goes on as soon as the consumer has
 * taken what it was sent, without waiting for ACK_INTERVAL_MS.
 */
export const ACK_EVERY_BYTES = 256 * 1024;
/** Else this long after the first of them: each ACK wakes the app's object, so about once a second at most. */
export const ACK_INTERVAL_MS = 1000;

/** A finished task as pushed on the feed: the task record plus its per-app seq. */
export type TaskResult = TaskRecord & { seq: number };

export interface SubscribeOptions {
  /** Replay results after this seq first. @default undefined (live from now on) */
  since?: number;
  /** Heartbeat interval in ms; must stay under 15 000. @default 10000 */
  heartbeatMs?: number;
  /** Reconnect backoff bounds in ms. @default { minMs: 250, maxMs: 10000 } */
  reconnect?: { minMs: number; maxMs: number };
  /** Stops the subscription. */
  signal?: AbortSignal;
  /** Called on each (re)connection attempt and close, for logging; `error` is what a failed attempt threw. */
  onEvent?: (event: { type: "open" | "close" | "error"; detail?: string; error?: unknown }) => void;
}

interface HelloFrame {
  type: "hello";
  seq: number;
}

type WebSocketLike = Pick<WebSocket, "send" | "close" | "addEventListener" | "readyState">;

/** A result waiting for the consumer, and how to acknowledge it once taken. */
interface Received {
  result: TaskResult;
  taken: () => void;
}

/**
 * Acknowledgements on one connection: `consumed` after each result taken (or dropped as a
 * duplicate); `ACK <latest seq>` goes out once ACK_EVERY_BYTES are consumed, else ACK_INTERVAL_MS
 * after the first. Only seqs received on this connection: the server refuses any other.
 */
function acknowledger(ws: WebSocketLike) {
  let seq = -1;
  let acked = -1;
  let bytes = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let closed = false;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    // A socket closing already would only log an error (browsers do): the close event follows.
    if (closed || seq <= acked || ws.readyState === 2 || ws.readyState === 3) return;
    acked = seq;
    bytes = 0;
    try {
      ws.send(`ACK ${seq}`);
    } catch {
      // the close event follows
    }
  };
  return {
    consumed(frameSeq: number, frameBytes: number): void {
      if (closed) return;
      seq = Math.max(seq, frameSeq);
      bytes += frameBytes;
      if (bytes >= ACK_EVERY_BYTES) flush();
      else timer ??= setTimeout(flush, ACK_INTERVAL_MS);
    },
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

export type OpenSocket = (since: number | null) => Promise<WebSocketLike>;

export function subscription(open: OpenSocket, options: SubscribeOptions = {}): AsyncIterableIterator<TaskResult> {
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  if (!(heartbeatMs > 0 && heartbeatMs < 15_000)) throw new RangeError("heartbeatMs must be between 0 and 15000");
  const backoff = options.reconnect ?? { minMs: 250, maxMs: 10_000 };
  const buffered: Received[] = [];
  let wake: (() => void) | null = null;
  let lastSeq: number | null = options.since ?? null;
  let stopped = false;
  let failure: unknown = null;
  let socket: WebSocketLike | null = null;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  let failures = 0;

  const notify = () => {
    wake?.();
    wake = null;
  };
  const stop = () => {
    stopped = true;
    if (heartbeat) clearInterval(heartbeat);
    try {
      socket?.close(1000, "done");
    } catch {
      // already closed
    }
    notify();
  };
  options.signal?.addEventListener("abort", stop, { once: true });

  const connect = async (): Promise<void> => {
    while (!stopped) {
      try {
        const ws = await open(lastSeq);
        socket = ws;
        const acks = acknowledger(ws);
        await new Promise<void>((resolve) => {
          ws.addEventListener("open", () => {
            failures = 0;
            options.onEvent?.({ type: "open" });
            heartbeat = setInterval(() => {
              try {
                ws.send("OK");
              } catch {
                // the close event follows
              }
            }, heartbeatMs);
          });
          ws.addEventListener("message", (event) => {
            const text = typeof event.data === "string" ? event.data : "";
            if (text === "OK" || text === "") return;
            const frame = JSON.parse(text) as TaskResult | HelloFrame;
            if ("type" in frame) {
              if (lastSeq === null) lastSeq = frame.seq;
              return;
            }
            const taken = () => acks.consumed(frame.seq, text.length);
            if (lastSeq !== null && frame.seq <= lastSeq) return taken(); // seen before a reconnect
            lastSeq = frame.seq;
            buffered.push({ result: frame, taken });
            notify();
          });
          ws.addEventListener("error", () => options.onEvent?.({ type: "error" }));
          ws.addEventListener("close", (event) => {
            acks.close();
            if (heartbeat) clearInterval(heartbeat);
            heartbeat = null;
            options.onEvent?.({ type: "close", detail: `${event.code} ${event.reason}` });
            resolve();
          });
        });
      } catch (error) {
        options.onEvent?.({ type: "error", detail: error instanceof Error ? error.message : String(error), error });
        if (isFatal(error)) {
          failure = error;
          stop();
          return;
        }
      }
      if (stopped) return;
      failures++;
      const ceiling = Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(failures, 16));
      await new Promise((resolve) => setTimeout(resolve, Math.max(backoff.minMs, Math.random() * ceiling)));
    }
  };
  void connect();

  const iterator: AsyncIterableIterator<TaskResult> = {
    [Symbol.asyncIterator]: () => iterator,
    async next(): Promise<IteratorResult<TaskResult>> {
      for (;;) {
        const received = buffered.shift();
        if (received) {
          received.taken();
          return { value: received.result, done: false };
        }
        if (failure) throw failure;
        if (stopped) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    async return(): Promise<IteratorResult<TaskResult>> {
      stop();
      return { value: undefined, done: true };
    },
  };
  return iterator;
}

/** Errors that reconnecting cannot fix (bad keys, unknown app). */
function isFatal(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === "number" && [400, 401, 403, 404].includes(status);
}
