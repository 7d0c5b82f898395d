/**
 * Control headers a client may add to a submission (QStash's vocabulary under our
 * namespace). They are consumed by the gateway and never forwarded. Pure.
 */
import { badRequest } from "../http/errors";
import { MAX_TIMEOUT_SECONDS, checkOrigin } from "../config/app-config";
import type { ConfigRules } from "../config/rules";
import { parseDuration } from "../shared/duration";
import type { SubmitOptions } from "../app/contract";

/** Longest delay accepted: a task must be able to run within the longest retention. */
const MAX_DELAY_SECONDS = 31 * 86_400;

export { parseDuration };

export function parseSubmitOptions(headers: Headers, nowMs: number, rules: ConfigRules): SubmitOptions {
  const delay = headers.get("asyncgate-delay");
  const notBefore = headers.get("asyncgate-not-before");
  if (delay !== null && notBefore !== null) {
    throw badRequest("invalid_header", "give Asyncgate-Delay or Asyncgate-Not-Before, not both");
  }
  let notBeforeMs = nowMs;
  if (delay !== null) {
    const seconds = parseDuration(delay);
    if (seconds === null || seconds > MAX_DELAY_SECONDS) {
      throw badRequest(
        "invalid_header",
        "Asyncgate-Delay must be seconds or a duration such as 10s, 5m, 2h (at most 31d)",
      );
    }
    notBeforeMs = nowMs + Math.round(seconds * 1000);
  }
  if (notBefore !== null) {
    if (!/^\d{1,12}$/.test(notBefore.trim())) {
      throw badRequest("invalid_header", "Asyncgate-Not-Before must be unix seconds");
    }
    const at = Number(notBefore) * 1000;
    if (at - nowMs > MAX_DELAY_SECONDS * 1000)
      throw badRequest("invalid_header", "Asyncgate-Not-Before is more than 31 days ahead");
    notBeforeMs = Math.max(nowMs, at);
  }

  const deduplicationId = headers.get("asyncgate-deduplication-id");
  if (deduplicationId !== null && (deduplicationId.length === 0 || deduplicationId.length > 256)) {
    throw badRequest("invalid_header", "Asyncgate-Deduplication-Id must be 1-256 characters");
  }

  let maxAttempts: number | null = null;
  const retries = headers.get("asyncgate-retries");
  if (retries !== null) {
    if (!/^\d{1,3}$/.test(retries.trim()))
      throw badRequest("invalid_header", "Asyncgate-Retries must be an integer 0-999");
    maxAttempts = Number(retries) + 1;
  }

  let timeout: number | null = null;
  const timeoutHeader = headers.get("asyncgate-timeout");
  if (timeoutHeader !== null) {
    timeout = parseDuration(timeoutHeader);
    if (timeout === null || timeout <= 0 || timeout > MAX_TIMEOUT_SECONDS) {
      throw badRequest("invalid_header", `Asyncgate-Timeout must be a duration up to ${MAX_TIMEOUT_SECONDS}s`);
    }
  }

  const callbackHeader = headers.get("asyncgate-callback");
  const callback = callbackHeader === null ? null : checkOrigin(callbackHeader.trim(), rules, "callback");

  const failFastHeader = headers.get("asyncgate-fail-fast");
  if (failFastHeader !== null && !/^(true|false)$/i.test(failFastHeader.trim())) {
    throw badRequest("invalid_header", "Asyncgate-Fail-Fast must be true or false");
  }
  const failFast = failFastHeader?.trim().toLowerCase() === "true";

  return { notBeforeMs, deduplicationId, maxAttempts, timeout, callback, failFast };
}
