// Proves the SDK iterator: heartbeats, reconnects with resume, and yields each seq exactly once in order.
import { describe, expect, it } from "vitest";
import { subscription, type OpenSocket } from "../../src/client/subscription";

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
