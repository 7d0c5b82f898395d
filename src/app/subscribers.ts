/**
 * The app's live-result subscribers: WebSockets accepted with the Hibernation API, so an
 * idle subscriber costs nothing. What must survive hibernation (when the socket was
 * accepted, when we last heard from it, its flow control: flow-control.ts) lives in the
 * socket's attachment; the object's memory may be gone between any two events.
 */
import {
  HEARTBEAT_CLOSE_CODE,
  HEARTBEAT_CLOSE_REASON,
  checkAt,
  isSilent,
  lastSignOfLife,
  type SubscriberAttachment,
} from "./heartbeat";
import {
  TOO_SLOW_CLOSE_CODE,
  TOO_SLOW_CLOSE_REASON,
  acknowledge,
  flowFrom,
  flowToSave,
  parseAck,
  recordSent,
  unackedBytes,
  utf8Bytes,
  withReplay,
  wouldOverflow,
  type Flow,
  type FlowAttachment,
} from "./flow-control";
import { log } from "../shared/log";

/** Largest text frame a subscriber may send; its messages are the `OK` heartbeat and `ACK <seq>`. */
export const MAX_CLIENT_FRAME_CHARS = 1024;

const HEARTBEAT = "OK";

/** Close codes a server may send back when reciprocating a client's close (1005/1006/1015 are not sendable). */
function sendableCloseCode(code: number): number {
  if (code === 1000 || (code >= 3000 && code <= 4999)) return code;
  return [1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011].includes(code) ? code : 1000;
}

function safeClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed: nothing to reciprocate
  }
}

/** A send racing the client's close is not an error: the client is gone, there is nobody to tell. */
function safeSend(ws: WebSocket, message: string): void {
  try {
    ws.send(message);
  } catch {
    // closed meanwhile
  }
}

/** Closes `ws` for a frame it should not have sent; answers false (no acknowledgement taken). */
function refuse(ws: WebSocket, code: number, reason: string): false {
  safeClose(ws, code, reason);
  return false;
}

/** The tag of the sockets a key opened. */
const openedByTag = (accessKey: string) => `key:${accessKey}`;

/** Close code for the feeds of a revoked key. */
export const KEY_REVOKED_CLOSE_CODE = 4403;

export class Subscribers {
  readonly #ctx: DurableObjectState;

  constructor(ctx: DurableObjectState) {
    this.#ctx = ctx;
    // The runtime answers "OK" with "OK" itself, without waking the object: heartbeats are free.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT, HEARTBEAT));
  }

  /** Open subscribers (a closed-but-unreaped socket can linger in getWebSockets, workerd#1187). */
  open(): WebSocket[] {
    return this.#ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  /**
   * Each socket's flow state, read from its attachment when first needed after a wake and
   * written back at the end of every turn that changed it; the marks an older seq's ACK may
   * credit live here only.
   */
  readonly #flows = new WeakMap<WebSocket, Flow>();
  /**
   * Sockets whose flow state changed in this turn. Their attachments are written once, in a
   * microtask at its end (a batch of results costs one write per socket, not one per result):
   * an object is never hibernated with a microtask pending, so nothing is lost.
   */
  readonly #unsaved = new Set<WebSocket>();

  #flow(ws: WebSocket): Flow {
    let flow = this.#flows.get(ws);
    if (!flow) {
      flow = flowFrom(ws.deserializeAttachment() as Partial<FlowAttachment> | null);
      this.#flows.set(ws, flow);
    }
    return flow;
  }

  #setFlow(ws: WebSocket, flow: Flow): void {
    this.#flows.set(ws, flow);
    if (this.#unsaved.size === 0) queueMicrotask(() => this.#saveFlows());
    this.#unsaved.add(ws);
  }

  #saveFlows(): void {
    for (const ws of this.#unsaved) {
      const flow = this.#flows.get(ws);
      if (ws.readyState !== WebSocket.OPEN) continue; // closed meanwhile: nothing to keep
      try {
        const attachment = ws.deserializeAttachment() as SubscriberAttachment | null;
        if (!flow || !attachment) continue;
        ws.serializeAttachment({ ...attachment, ...flowToSave(flow) } satisfies SubscriberAttachment & FlowAttachment);
      } catch (error) {
        log("warn", "flow_save_failed", {}, error);
      }
    }
    this.#unsaved.clear();
  }

  /** Accepts a subscriber; returns the client end (for the 101) and the server end. */
  accept(now: number, openedBy: string | null = null): { client: WebSocket; server: WebSocket } {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // Tagged with the key that opened it (tags survive hibernation), so revoking the key finds it.
    this.#ctx.acceptWebSocket(server, openedBy ? [openedByTag(openedBy)] : []);
    server.serializeAttachment({
      acceptedAt: now,
      lastMessageAt: now,
      lastAutoResponseAt: 0,
    } satisfies SubscriberAttachment);
    return { client, server };
  }

  /** Closes every subscriber the access key opened (it was revoked): answers how many. */
  closeOpenedBy(accessKey: string, code: number, reason: string): number {
    const sockets = this.#ctx.getWebSockets(openedByTag(accessKey));
    for (const ws of sockets) this.onClose(ws, code, reason);
    return sockets.length;
  }

  /** Sends a frame that is not a result (the hello) to one subscriber; false when it is gone. */
  send(ws: WebSocket, message: string): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(message);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Sends result `seq` to one subscriber, counting its bytes as unacknowledged; false when it
   * is gone, or closed with 4413 because the frame would take it past MAX_UNACKED_BYTES.
   */
  sendResult(ws: WebSocket, seq: number, frame: string, bytes = utf8Bytes(frame)): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    const flow = this.#flow(ws);
    if (wouldOverflow(flow, bytes)) {
      log("warn", "subscriber_too_slow", { unackedBytes: unackedBytes(flow), seq });
      safeClose(ws, TOO_SLOW_CLOSE_CODE, TOO_SLOW_CLOSE_REASON);
      return false;
    }
    if (!this.send(ws, frame)) return false;
    this.#setFlow(ws, recordSent(flow, seq, bytes));
    return true;
  }

  /** Bytes of result frames sent to `ws` and not acknowledged. */
  unackedBytes(ws: WebSocket): number {
    return unackedBytes(this.#flow(ws));
  }

  /**
   * Live results skip `ws` until {@link goLive}: a resume replay is under way and will read
   * them itself. `after` is the seq it continues after, kept in the attachment so a replay
   * paused for acknowledgements survives hibernation.
   */
  holdLive(ws: WebSocket, after: number): void {
    this.#setFlow(ws, withReplay(this.#flow(ws), after));
  }

  goLive(ws: WebSocket): void {
    if (this.#flow(ws).replayAfter !== null) this.#setFlow(ws, withReplay(this.#flow(ws), null));
  }

  /** Where the resume replay of `ws` continues after; null when it is live. */
  replayAfter(ws: WebSocket): number | null {
    return this.#flow(ws).replayAfter;
  }

  broadcast(seq: number, frame: string): void {
    const bytes = utf8Bytes(frame);
    for (const ws of this.open()) {
      if (this.#flow(ws).replayAfter !== null) continue;
      try {
        this.sendResult(ws, seq, frame, bytes);
      } catch (error) {
        log("warn", "broadcast_failed", {}, error);
      }
    }
  }

  /**
   * A frame that reached the object: `ACK <seq>` (true: it may let a paused replay go on), the
   * heartbeat while the auto-response is not set up, or a protocol error.
   */
  onMessage(ws: WebSocket, message: string | ArrayBuffer, now: number): boolean {
    // Frames the client sent before it saw our close (of a bad frame, a reap) still arrive: ignore them.
    if (ws.readyState !== WebSocket.OPEN) return false;
    if (typeof message !== "string") return refuse(ws, 1003, "binary frames are not supported");
    if (message.length > MAX_CLIENT_FRAME_CHARS) return refuse(ws, 1009, "message too big");
    // Exactly "OK", as the auto-response matches it, or an exact ACK: anything else is a protocol error (README).
    const acked = message === HEARTBEAT ? null : parseAck(message);
    if (message !== HEARTBEAT && acked === null) {
      const reason = message.startsWith("ACK")
        ? 'malformed ACK: send "ACK <seq>"'
        : 'unsupported message: send "OK" or "ACK <seq>"';
      return refuse(ws, 1008, reason);
    }
    const attachment = ws.deserializeAttachment() as SubscriberAttachment | null;
    if (attachment) ws.serializeAttachment({ ...attachment, lastMessageAt: now } satisfies SubscriberAttachment);
    if (acked === null) {
      safeSend(ws, HEARTBEAT);
      return false;
    }
    const flow = acknowledge(this.#flow(ws), acked);
    if (!flow) return refuse(ws, 1008, `ACK of seq ${acked}, which was not sent`);
    this.#setFlow(ws, flow);
    return true;
  }

  /** Completes the close handshake: hibernatable sockets do not reciprocate by themselves. */
  onClose(ws: WebSocket, code: number, reason: string): void {
    this.#flows.delete(ws);
    safeClose(ws, sendableCloseCode(code), reason.slice(0, 123));
  }

  /**
   * Closes subscribers silent for more than 15 s (4408) and answers when to look again:
   * the earliest deadline of those still open, or null when none is.
   */
  reap(now: number): number | null {
    let next: number | null = null;
    for (const ws of this.open()) {
      const attachment = ws.deserializeAttachment() as SubscriberAttachment | null;
      if (!attachment) continue;
      const autoResponseAt = this.#ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? null;
      if (autoResponseAt !== null && autoResponseAt > attachment.lastAutoResponseAt) {
        ws.serializeAttachment({ ...attachment, lastAutoResponseAt: autoResponseAt } satisfies SubscriberAttachment);
      }
      const lastSeen = lastSignOfLife(attachment, autoResponseAt);
      if (isSilent(lastSeen, now)) {
        safeClose(ws, HEARTBEAT_CLOSE_CODE, HEARTBEAT_CLOSE_REASON);
      } else {
        next = Math.min(next ?? Infinity, checkAt(lastSeen));
      }
    }
    return next;
  }
}
