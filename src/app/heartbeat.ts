/**
 * Subscriber heartbeat deadlines (SPEC §6). Pure functions of "now" and what is known
 * about a socket, so the rules are tested without clocks.
 *
 * A subscriber's last sign of life is the latest of: when it was accepted, when it last
 * sent a message that woke the object, the runtime's auto-response timestamp (the last
 * `OK` answered without waking us), and the latest auto-response time seen before.
 * cloudflare/workerd#2025 reports that timestamp wrong in production; taking the latest of
 * everything known means a stale or missing value can only make us close later, never
 * earlier: a live subscriber is never closed on a value we cannot trust.
 */

/** Silence longer than this closes a subscriber (never earlier than 15 s). */
export const HEARTBEAT_TIMEOUT_MS = 15_000;
/** The alarm fires this long after a deadline, so "more than 15 s" holds; well inside the 17 s bound. */
export const HEARTBEAT_SLACK_MS = 250;
export const HEARTBEAT_CLOSE_CODE = 4408;
export const HEARTBEAT_CLOSE_REASON = "heartbeat timeout";

/** What a subscriber's socket carries across hibernation (serializeAttachment, ≤ 16 KiB). */
export interface SubscriberAttachment {
  acceptedAt: number;
  /** Last message that reached webSocketMessage. */
  lastMessageAt: number;
  /** Latest auto-response timestamp observed so far. */
  lastAutoResponseAt: number;
}

export function lastSignOfLife(attachment: SubscriberAttachment, autoResponseAt: number | null): number {
  return Math.max(attachment.acceptedAt, attachment.lastMessageAt, attachment.lastAutoResponseAt, autoResponseAt ?? 0);
}

/** Whether a subscriber last heard from at `lastSeen` has been silent too long at `now`. */
export const isSilent = (lastSeen: number, now: number): boolean => now - lastSeen > HEARTBEAT_TIMEOUT_MS;

/** When to look at a subscriber last heard from at `lastSeen` again. */
export const checkAt = (lastSeen: number): number => lastSeen + HEARTBEAT_TIMEOUT_MS + HEARTBEAT_SLACK_MS;
