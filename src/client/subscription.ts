/**
 * `subscribe()`: the live result feed as an async iterator. It heartbeats (`OK` every
 * 10 s, under the server's 15 s limit), reconnects with full-jitter backoff, and resumes
 * with `since=<last seq seen>`, dropping anything at or below it: across reconnects the
 * consumer of the iterator sees every result exactly once, in seq order.
 */
import type { TaskRecord } from "../shared/types";

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

export type OpenSocket = (since: number | null) => Promise<WebSocketLike>;

export function subscription(open: OpenSocket, options: SubscribeOptions = {}): AsyncIterableIterator<TaskResult> {
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  if (!(heartbeatMs > 0 && heartbeatMs < 15_000)) throw new RangeError("heartbeatMs must be between 0 and 15000");
  const backoff = options.reconnect ?? { minMs: 250, maxMs: 10_000 };
  const buffered: TaskResult[] = [];
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
            if (lastSeq !== null && frame.seq <= lastSeq) return;
            lastSeq = frame.seq;
            buffered.push(frame);
            notify();
          });
          ws.addEventListener("error", () => options.onEvent?.({ type: "error" }));
          ws.addEventListener("close", (event) => {
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
        const result = buffered.shift();
        if (result) return { value: result, done: false };
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
