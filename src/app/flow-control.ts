/**
 * The live feed's flow control (issue 23). workerd's server-side WebSocket has no
 * `bufferedAmount`: a `send` never blocks, and the object cannot see what the runtime buffers
 * for a subscriber that does not read. The only proof that a subscriber reads is a message from
 * it, so subscribers acknowledge results with the text `ACK <seq>`, and per socket the object
 * counts the bytes of result frames sent beyond the last acknowledgement. A subscriber that
 * would pass MAX_UNACKED_BYTES is closed (4413) instead of sent more; the resume replay sends
 * its next page only while the count is under REPLAY_WINDOW_BYTES.
 *
 * The count and the latest seq sent survive hibernation in the socket's attachment. Marks
 * (seq, bytes sent through it), one per ACK_MARK_SPACING_BYTES at most, let an acknowledgement
 * of an older seq credit what it covers; they live in memory only. After a wake they are gone,
 * and an older seq credits nothing until the subscriber acknowledges the latest seq sent, which
 * clears the count: never counting less than is buffered keeps the bound sound.
 *
 * Pure: values in, values out.
 */

/** A subscriber whose unacknowledged result frames would pass this is closed with 4413. */
export const MAX_UNACKED_BYTES = 8 * 1024 * 1024;
/** The resume replay sends its next page only while a subscriber's unacknowledged bytes are under this. */
export const REPLAY_WINDOW_BYTES = 1024 * 1024;
/** At most one mark per this many bytes sent: at most MAX_UNACKED_BYTES / this marks (128) per socket. */
export const ACK_MARK_SPACING_BYTES = 64 * 1024;
export const TOO_SLOW_CLOSE_CODE = 4413;
export const TOO_SLOW_CLOSE_REASON = "subscriber too slow: acknowledge results with ACK <seq>";

/** What a subscriber's flow control keeps in its socket's attachment (beside the heartbeat's fields). */
export interface FlowAttachment {
  /** Bytes of result frames sent and not acknowledged. */
  unackedBytes: number;
  /** The seq of the latest result frame sent; -1 before the first. */
  sentSeq: number;
  /** While a resume replay runs: the seq it continues after (live results skip the socket); else null. */
  replayAfter: number | null;
}

/** A subscriber's flow state as the object holds it in memory. */
export interface Flow {
  /** Bytes of result frames sent since this state was loaded. */
  readonly sentBytes: number;
  /** Of those, the bytes acknowledged. */
  readonly ackedBytes: number;
  readonly sentSeq: number;
  readonly replayAfter: number | null;
  /** (seq, sentBytes through that frame), in send order: what an older seq's ACK may credit. */
  readonly marks: readonly { seq: number; bytes: number }[];
}

/** The flow state from an attachment (fields missing: nothing sent, no replay). */
export function flowFrom(saved: Partial<FlowAttachment> | null): Flow {
  return {
    sentBytes: saved?.unackedBytes ?? 0,
    ackedBytes: 0,
    sentSeq: saved?.sentSeq ?? -1,
    replayAfter: saved?.replayAfter ?? null,
    marks: [],
  };
}

export const flowToSave = (flow: Flow): FlowAttachment => ({
  unackedBytes: unackedBytes(flow),
  sentSeq: flow.sentSeq,
  replayAfter: flow.replayAfter,
});

export const unackedBytes = (flow: Flow): number => flow.sentBytes - flow.ackedBytes;

/** Whether sending a frame of `bytes` would leave more than MAX_UNACKED_BYTES unacknowledged. */
export const wouldOverflow = (flow: Flow, bytes: number): boolean => unackedBytes(flow) + bytes > MAX_UNACKED_BYTES;

/** After a result frame of `bytes` with `seq` was sent. */
export function recordSent(flow: Flow, seq: number, bytes: number): Flow {
  const sentBytes = flow.sentBytes + bytes;
  const lastMark = flow.marks.at(-1)?.bytes ?? flow.ackedBytes;
  const marks =
    sentBytes - lastMark >= ACK_MARK_SPACING_BYTES ? [...flow.marks, { seq, bytes: sentBytes }] : flow.marks;
  return { ...flow, sentBytes, sentSeq: seq, marks };
}

/**
 * After `ACK <seq>`: the latest seq sent clears the count; an older one credits through the
 * latest mark at or below it (seqs rise in send order), else nothing. Null when `seq` was
 * never sent: a protocol error.
 */
export function acknowledge(flow: Flow, seq: number): Flow | null {
  if (seq > flow.sentSeq) return null;
  if (seq === flow.sentSeq) return { ...flow, ackedBytes: flow.sentBytes, marks: [] };
  let covered = -1;
  for (let i = 0; i < flow.marks.length && flow.marks[i]!.seq <= seq; i++) covered = i;
  if (covered < 0) return flow;
  return {
    ...flow,
    ackedBytes: Math.max(flow.ackedBytes, flow.marks[covered]!.bytes),
    marks: flow.marks.slice(covered + 1),
  };
}

export const withReplay = (flow: Flow, replayAfter: number | null): Flow => ({ ...flow, replayAfter });

const ACK = /^ACK (0|[1-9][0-9]{0,15})$/;

/** The seq of an exact `ACK <seq>` (decimal, no sign, no leading zero, nothing around); else null. */
export function parseAck(text: string): number | null {
  const match = ACK.exec(text);
  if (!match) return null;
  const seq = Number(match[1]);
  return Number.isSafeInteger(seq) ? seq : null;
}

const encoder = new TextEncoder();

/** A frame's size on the wire: records are ASCII but for non-ASCII header values, counted exactly. */
export function utf8Bytes(text: string): number {
  return /[^\u0000-\u007f]/.test(text) ? encoder.encode(text).byteLength : text.length;
}
