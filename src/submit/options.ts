/**
 * Control headers a client may add to a submission (QStash's vocabulary under our
 * namespace). They are consumed by the gateway and never forwarded. Pure.
 */
import { badRequest } from "../http/errors";
import { canonicalHeaderName } from "../http/headers";
import { MAX_TIMEOUT_SECONDS, checkOrigin } from "../config/app-config";
import type { ConfigRules } from "../config/rules";
import { parseDuration } from "../shared/duration";
import type { SubmitOptions } from "../app/contract";

/** Longest delay accepted: a task must be able to run within the longest retention. */
const MAX_DELAY_SECONDS = 31 * 86_400;

export { parseDuration };

/**
 * How a request's signature covers its control headers: whether it signed the header named
 * (lower case). A captured request whose control headers are covered cannot be replayed with
 * other ones (another callback, another delay).
 */
export interface ControlCoverage {
  covered(lowerName: string): boolean;
  /** Refuse control headers the signature does not cover (`REQUIRE_SIGNED_CONTROL_HEADERS`). */
  required: boolean;
}

/**
 * The Qiniu token signs every `X-Qiniu-*` header: a control header sent as
 * `X-Qiniu-Asyncgate-Callback` (asyncgate's SDK and CLI send them so) is covered.
 */
export const qiniuCoverage = (required: boolean): ControlCoverage => ({
  covered: (name) => name.startsWith("x-qiniu-"),
  required,
});

/** A control header's value, in its signed Qiniu form (`X-Qiniu-Asyncgate-…`) or its plain one. */
function control(headers: Headers, name: string, coverage: ControlCoverage): string | null {
  const alias = `x-qiniu-${name}`;
  const [signed, plain] = [headers.get(alias), headers.get(name)];
  if (signed !== null && plain !== null) {
    throw badRequest(
      "invalid_header",
      `give ${canonicalHeaderName(name)} once: as ${canonicalHeaderName(alias)} or unsigned`,
    );
  }
  const given = signed !== null ? alias : name;
  if ((signed ?? plain) !== null && coverage.required && !coverage.covered(given)) {
    throw badRequest(
      "unsigned_control_header",
      `${canonicalHeaderName(given)} is not covered by the request's signature: sign it (with a Qiniu token, send ${canonicalHeaderName(alias)})`,
    );
  }
  return signed ?? plain;
}

export function parseSubmitOptions(
  headers: Headers,
  nowMs: number,
  rules: ConfigRules,
  coverage: ControlCoverage = qiniuCoverage(false),
): SubmitOptions {
  const delay = control(headers, "asyncgate-delay", coverage);
  const notBefore = control(headers, "asyncgate-not-before", coverage);
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

  const deduplicationId = control(headers, "asyncgate-deduplication-id", coverage);
  if (deduplicationId !== null && (deduplicationId.length === 0 || deduplicationId.length > 256)) {
    throw badRequest("invalid_header", "Asyncgate-Deduplication-Id must be 1-256 characters");
  }

  let maxAttempts: number | null = null;
  const retries = control(headers, "asyncgate-retries", coverage);
  if (retries !== null) {
    if (!/^\d{1,3}$/.test(retries.trim()))
      throw badRequest("invalid_header", "Asyncgate-Retries must be an integer 0-999");
    maxAttempts = Number(retries) + 1;
  }

  let timeout: number | null = null;
  const timeoutHeader = control(headers, "asyncgate-timeout", coverage);
  if (timeoutHeader !== null) {
    timeout = parseDuration(timeoutHeader);
    if (timeout === null || timeout <= 0 || timeout > MAX_TIMEOUT_SECONDS) {
      throw badRequest("invalid_header", `Asyncgate-Timeout must be a duration up to ${MAX_TIMEOUT_SECONDS}s`);
    }
  }

  const callbackHeader = control(headers, "asyncgate-callback", coverage);
  const callback = callbackHeader === null ? null : checkOrigin(callbackHeader.trim(), rules, "callback");

  const failFastHeader = control(headers, "asyncgate-fail-fast", coverage);
  if (failFastHeader !== null && !/^(true|false)$/i.test(failFastHeader.trim())) {
    throw badRequest("invalid_header", "Asyncgate-Fail-Fast must be true or false");
  }
  const failFast = failFastHeader?.trim().toLowerCase() === "true";

  return { notBeforeMs, deduplicationId, maxAttempts, timeout, callback, failFast };
}
