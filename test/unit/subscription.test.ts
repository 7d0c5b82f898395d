// Proves the SDK iterator: heartbeats, reconnects with resume, yields each seq exactly once in order, and acknowledges what it consumed (throttled).
import { afterEach, describe, expect, it, vi } from "vitest";
import { ACK_EVERY_BYTES, ACK_INTERVAL_MS, subscription, type OpenSocket } from "../../src/client/subscription";

type Listener = (event: { data?: unknown; code?: number; reason?: string }) => void;

class FakeSocket {
  readyState = 0;
  sent: string[] = [];
  readonly #listeners = new Map<string, Listener[]>();
  addEventListener(type: string, listener: Listener) {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }
  emit(type: string, event: { data?: unknown; code?: number; reason?: string } = {}) {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
  send(text: string) {
    this.sent.push(text);
  }
  close() {
    this.emit("close", { code: 1000, reason: "" });
  }
}

const result = (seq: number) => JSON.stringify({ id: `t${seq}`, state: 10, seq });
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("subscription", () => {
  it("resumes from the last seq after a drop and never yields a seq twice", async () => {
    const sockets: FakeSocket[] = [];
    const sinces: (number | null)[] = [];
    const open: OpenSocket = async (since) => {
      sinces.push(since);
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket as unknown as WebSocket;
    };
    const iterator = subscription(open, { heartbeatMs: 10, reconnect: { minMs: 1, maxMs: 2 } });
    await tick();
    sockets[0]!.emit("open");
    sockets[0]!.emit("message", { data: JSON.stringify({ type: "hello", seq: 5 }) });
    sockets[0]!.emit("message", { data: result(6) });
    sockets[0]!.emit("message", { data: "OK" });
    sockets[0]!.emit("message", { data: result(7) });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(sockets[0]!.sent.filter((text) => text === "OK").length).toBeGreaterThan(0);
    sockets[0]!.emit("close", { code: 1006, reason: "" });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sinces).toEqual([null, 7]);
    sockets[1]!.emit("open");
    sockets[1]!.emit("message", { data: JSON.stringify({ type: "hello", seq: 9 }) });
    sockets[1]!.emit("message", { data: result(7) });
    sockets[1]!.emit("message", { data: result(8) });
    sockets[1]!.emit("message", { data: result(9) });
    const seqs: number[] = [];
    for (let i = 0; i < 4; i++) seqs.push(((await iterator.next()).value as { seq: number }).seq);
    expect(seqs).toEqual([6, 7, 8, 9]);
    await iterator.return!();
    expect((await iterator.next()).done).toBe(true);
  });

  it("starts from `since` when given, and refuses heartbeats at or over 15 s", async () => {
    const sinces: (number | null)[] = [];
    const iterator = subscription(
      async (since) => {
        sinces.push(since);
        return new FakeSocket() as unknown as WebSocket;
      },
      { since: 41 },
    );
    await tick();
    expect(sinces).toEqual([41]);
    await iterator.return!();
    expect(() => subscription(async () => new FakeSocket() as unknown as WebSocket, { heartbeatMs: 15_000 })).toThrow(
      RangeError,
    );
  });
});

describe("subscription acknowledgements", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A result frame of about `bytes` characters. */
  const sized = (seq: number, bytes: number) =>
    JSON.stringify({ id: `t${seq}`, state: 10, seq, pad: "x".repeat(bytes) });
  const acks = (socket: FakeSocket) => socket.sent.filter((text) => text.startsWith("ACK"));

  async function connected(sockets: FakeSocket[], since?: number) {
    vi.useFakeTimers();
    const open: OpenSocket = async () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket as unknown as WebSocket;
    };
    const iterator = subscription(open, { since, reconnect: { minMs: 1, maxMs: 2 } });
    await vi.advanceTimersByTimeAsync(0);
    sockets.at(-1)!.emit("open");
    return iterator;
  }

  it("acknowledges only what was consumed: at once per 256 KiB, else within a second", async () => {
    const sockets: FakeSocket[] = [];
    const iterator = await connected(sockets);
    const socket = sockets[0]!;
    const size = Math.ceil(ACK_EVERY_BYTES / 2.5); // three frames pass 256 KiB
    for (let seq = 1; seq <= 5; seq++) socket.emit("message", { data: sized(seq, size) });
    await vi.advanceTimersByTimeAsync(2 * ACK_INTERVAL_MS);
    expect(acks(socket)).toEqual([]); // received, not consumed
    for (let i = 0; i < 3; i++) await iterator.next();
    expect(acks(socket)).toEqual(["ACK 3"]);
    for (let i = 0; i < 2; i++) await iterator.next();
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS - 1);
    expect(acks(socket)).toEqual(["ACK 3"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(acks(socket)).toEqual(["ACK 3", "ACK 5"]);
    await vi.advanceTimersByTimeAsync(5 * ACK_INTERVAL_MS);
    expect(acks(socket)).toEqual(["ACK 3", "ACK 5"]); // nothing new consumed, nothing sent
    await iterator.return!();
  });

  it("small results: at most one ACK a second, of the latest consumed", async () => {
    const sockets: FakeSocket[] = [];
    const iterator = await connected(sockets);
    const socket = sockets[0]!;
    for (let seq = 1; seq <= 20; seq++) socket.emit("message", { data: result(seq) });
    for (let i = 0; i < 10; i++) await iterator.next();
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS / 2);
    for (let i = 0; i < 10; i++) await iterator.next();
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS / 2);
    expect(acks(socket)).toEqual(["ACK 20"]);
    await iterator.return!();
  });

  it("after a resume: a duplicate is acknowledged though not yielded; results of the lost connection are never acknowledged on the new one", async () => {
    const sockets: FakeSocket[] = [];
    const iterator = await connected(sockets);
    for (let seq = 1; seq <= 3; seq++) sockets[0]!.emit("message", { data: result(seq) });
    expect(((await iterator.next()).value as { seq: number }).seq).toBe(1);
    sockets[0]!.emit("close", { code: 4413, reason: "subscriber too slow" });
    await vi.advanceTimersByTimeAsync(10);
    expect(sockets.length).toBe(2);
    const second = sockets[1]!;
    second.emit("open");
    second.emit("message", { data: JSON.stringify({ type: "hello", seq: 4 }) });
    second.emit("message", { data: result(3) }); // at or below the last seq seen: dropped
    second.emit("message", { data: result(4) });
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) seqs.push(((await iterator.next()).value as { seq: number }).seq);
    expect(seqs).toEqual([2, 3, 4]);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS);
    expect(acks(sockets[0]!)).toEqual([]);
    expect(acks(second)).toEqual(["ACK 4"]);
    await iterator.return!();
  });
});
