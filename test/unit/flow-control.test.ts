// Proves the live feed's flow-control rules: the exact ACK syntax, the 8 MiB bound, what an ACK of the latest or an older seq credits (with marks, and after a wake without them).
import { describe, expect, it } from "vitest";
import {
  ACK_MARK_SPACING_BYTES,
  MAX_UNACKED_BYTES,
  acknowledge,
  flowFrom,
  flowToSave,
  parseAck,
  recordSent,
  unackedBytes,
  utf8Bytes,
  wouldOverflow,
  type Flow,
} from "../../src/app/flow-control";

/** A flow after sending frames of `bytes` each, seqs `first`, `first + 1`, … */
function sent(count: number, bytes: number, first = 1, flow: Flow = flowFrom(null)): Flow {
  for (let i = 0; i < count; i++) flow = recordSent(flow, first + i, bytes);
  return flow;
}

describe("flow control", () => {
  it.each([
    ["ACK 0", 0],
    ["ACK 42", 42],
    ["ACK 9007199254740991", Number.MAX_SAFE_INTEGER],
    ["ACK 9007199254740992", null],
    ["ACK", null],
    ["ACK ", null],
    ["ACK x", null],
    ["ACK -1", null],
    ["ACK +1", null],
    ["ACK 1.0", null],
    ["ACK 01", null],
    ["ACK  1", null],
    ["ACK 1 ", null],
    [" ACK 1", null],
    ["ack 1", null],
    ["ACK 1\n", null],
    ["OK", null],
  ])("parses %j as %j", (text, seq) => {
    expect(parseAck(text)).toBe(seq);
  });

  it("counts sent bytes until the bound: one more frame past 8 MiB would overflow", () => {
    const flow = sent(8, 1024 * 1024);
    expect(unackedBytes(flow)).toBe(MAX_UNACKED_BYTES);
    expect(wouldOverflow(flow, 0)).toBe(false);
    expect(wouldOverflow(flow, 1)).toBe(true);
    expect(wouldOverflow(sent(7, 1024 * 1024), 1024 * 1024)).toBe(false);
  });

  it("an ACK of the latest seq sent clears the count; one of a seq never sent is refused", () => {
    const flow = sent(10, 300_000);
    expect(unackedBytes(acknowledge(flow, 10)!)).toBe(0);
    expect(acknowledge(flow, 11)).toBeNull();
    expect(acknowledge(flowFrom(null), 0)).toBeNull();
  });

  it("an ACK of an older seq credits through the latest mark at or below it, never more", () => {
    // 100 frames of 10 KB: a mark about every 64 KiB (each 7th frame).
    const flow = sent(100, 10_000);
    expect(flow.marks.length).toBeLessThanOrEqual(Math.ceil(1_000_000 / ACK_MARK_SPACING_BYTES));
    const acked = acknowledge(flow, 50)!;
    const exact = 1_000_000 - 50 * 10_000;
    expect(unackedBytes(acked)).toBeGreaterThanOrEqual(exact);
    expect(unackedBytes(acked)).toBeLessThan(exact + ACK_MARK_SPACING_BYTES);
    // An older ACK after a newer one takes nothing back.
    expect(unackedBytes(acknowledge(acked, 20)!)).toBe(unackedBytes(acked));
    // Before the first mark: nothing credited, nothing refused.
    expect(unackedBytes(acknowledge(flow, 1)!)).toBe(1_000_000);
  });

  it("marks stay bounded: at most one per 64 KiB unacknowledged", () => {
    const flow = sent(80_000, 100); // 8 MB of 100-byte frames
    expect(flow.marks.length).toBeLessThanOrEqual(MAX_UNACKED_BYTES / ACK_MARK_SPACING_BYTES);
  });

  it("after a wake (the attachment only, no marks) the count is kept; an older seq credits nothing, the latest clears", () => {
    const before = acknowledge(sent(20, 50_000), 5)!;
    const saved = flowToSave({ ...before, replayAfter: 7 });
    const woken = flowFrom(JSON.parse(JSON.stringify(saved)) as typeof saved);
    expect(unackedBytes(woken)).toBe(unackedBytes(before));
    expect(woken.replayAfter).toBe(7);
    expect(woken.sentSeq).toBe(20);
    expect(unackedBytes(acknowledge(woken, 15)!)).toBe(unackedBytes(before));
    expect(unackedBytes(acknowledge(woken, 20)!)).toBe(0);
    expect(flowFrom({ acceptedAt: 1 } as never)).toMatchObject({ sentSeq: -1, replayAfter: null, sentBytes: 0 });
  });

  it("counts frame sizes in UTF-8 bytes", () => {
    expect(utf8Bytes('{"a":"b"}')).toBe(9);
    expect(utf8Bytes('{"a":"é"}')).toBe(10);
    expect(utf8Bytes("€")).toBe(3);
  });
});
