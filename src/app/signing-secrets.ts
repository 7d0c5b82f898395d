/**
 * The app's signing secrets: the one every delivery and notification is signed with (see
 * delivery/signature.ts for the schemes), and its rotation, during which the previous secret
 * still signs beside the new one so origins can switch without refusing a delivery.
 */
import { bytesToBase64 } from "../shared/encoding";

/** How long a rotated-out signing secret still signs, beside the new one. */
export const PREVIOUS_SECRET_GRACE_MS = 24 * 3600 * 1000;

/** A new signing secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks' form). */
export function newSigningSecret(): string {
  return `whsec_${bytesToBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** What is stored about the app besides its config. */
export interface AppIdentity {
  number: number;
  createdMs: number;
  signingSecret: string;
  /** The secret a rotation replaced: it still signs, beside the new one, until `previousSigningSecretUntilMs`. */
  previousSigningSecret?: string | null;
  previousSigningSecretUntilMs?: number | null;
}

/** The secrets that sign now: the current one first, the previous one during its grace. */
export function signingSecretsOf(identity: AppIdentity, nowMs: number): string[] {
  const previous = identity.previousSigningSecret;
  const until = identity.previousSigningSecretUntilMs ?? 0;
  return previous && until > nowMs ? [identity.signingSecret, previous] : [identity.signingSecret];
}

/** `identity` with a new secret; the current one keeps signing until `nowMs` + the grace. */
export function rotated(identity: AppIdentity, nowMs: number): AppIdentity {
  return {
    ...identity,
    signingSecret: newSigningSecret(),
    previousSigningSecret: identity.signingSecret,
    previousSigningSecretUntilMs: nowMs + PREVIOUS_SECRET_GRACE_MS,
  };
}
