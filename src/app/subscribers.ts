/**
 * The app's live-result subscribers: WebSockets accepted with the Hibernation API, so an
 * idle subscriber costs nothing. What must survive hibernation (when the socket was
 * accepted, when we last heard from it) lives in the socket's attachment; the object's
 * memory may be gone between any two events.
 */
import {
  HEARTBEAT_CLOSE_CODE,
  HEARTBEAT_CLOSE_REASON,
  checkAt,
  isSilent,
  lastSignOfLife,
  type SubscriberAttachment,
} from "./heartbeat";
import { log } from "../shared/log";

/** Largest text frame a subscriber may send; its only message is the `OK` heartbeat. */
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
   * Subscribers still being sent a resume replay, page by page: live results skip them, and
   * the replay's last page (read in the same turn as they go live) carries those results.
   * Memory is enough: an object is not hibernated while a replay is running.
   */
  readonly #replaying = new Set<WebSocket>();

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

  /** Sends to one subscriber; false when it is gone. */
  send(ws: WebSocket, message: string): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(message);
      return true;
    } catch {
      return false;
    }
  }

  /** Live results skip `ws` until {@link goLive}. */
  holdLive(ws: WebSocket): void {
    this.#replaying.add(ws);
  }

  goLive(ws: WebSocket): void {
    this.#replaying.delete(ws);
  }

  broadcast(message: string): void {
    for (const ws of this.open()) {
      if (this.#replaying.has(ws)) continue;
      try {
        ws.send(message);
      } catch (error) {
        log("warn", "broadcast_failed", {}, error);
      }
    }
  }

  /** A frame that reached the object: the heartbeat while the auto-response is not set up, or a protocol error. */
  onMessage(ws: WebSocket, message: string | ArrayBuffer, now: number): void {
    // Frames the client sent before it saw our close (of a bad frame, a reap) still arrive: ignore them.
    if (ws.readyState !== WebSocket.OPEN) return;
    if (typeof message !== "string") return safeClose(ws, 1003, "binary frames are not supported");
    if (message.length > MAX_CLIENT_FRAME_CHARS) return safeClose(ws, 1009, "message too big");
    // Exactly "OK", as the auto-response matches it: anything else is a protocol error (README).
    if (message !== HEARTBEAT) return safeClose(ws, 1008, 'unsupported message: send "OK" as a heartbeat');
    const attachment = ws.deserializeAttachment() as SubscriberAttachment | null;
    if (attachment) ws.serializeAttachment({ ...attachment, lastMessageAt: now } satisfies SubscriberAttachment);
    safeSend(ws, HEARTBEAT);
  }

  /** Completes the close handshake: hibernatable sockets do not reciprocate by themselves. */
  onClose(ws: WebSocket, code: number, reason: string): void {
    this.#replaying.delete(ws);
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
