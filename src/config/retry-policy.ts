/**
 * Cloud Tasks' retry arithmetic. Pure: every function takes "now" and a random
 * source as values, so deadlines are tested without clocks.
 */

/** Cloud Tasks' retry model. Durations in seconds, fractions allowed. */
export interface RetryPolicy {
  /** Attempts in all, the first included; -1 = unlimited. @default 5 */
  max_attempts: number;
  /** Wait before the first retry. @default 1 */
  min_backoff: number;
  /** Longest wait between attempts. @default 3600 */
  max_backoff: number;
  /** How many times the wait doubles before it grows linearly. @default 16 */
  max_doublings: number;
  /** Stop retrying this long after the first attempt (together with max_attempts); 0 = no limit. @default 0 */
  max_retry_duration: number;
}

/** An app's retry policy: Cloud Tasks' model, plus statuses that are never retried. */
export interface AppRetryPolicy extends RetryPolicy {
  /** Failed responses with these statuses end the task at once (11). @default [] */
  no_retry_statuses: number[];
}

/**
 * The un-jittered wait before retry number `retry` (1 = the first retry): it doubles
 * `max_doublings` times from `min_backoff`, then grows linearly by the last doubled
 * step, and never exceeds `max_backoff`. With min 10, max 300, doublings 3 the waits
 * are 10, 20, 40, 80, 160, 240, 300, 300 … (Cloud Tasks' documented example).
 */
export function backoffSeconds(policy: RetryPolicy, retry: number): number {
  const k = Math.max(0, retry - 1);
  const doubled =
    k <= policy.max_doublings
      ? policy.min_backoff * 2 ** k
      : policy.min_backoff * 2 ** policy.max_doublings * (k - policy.max_doublings + 1);
  return Math.min(doubled, policy.max_backoff);
}

/**
 * The wait with jitter: uniformly in [½·wait, wait], never below `min_backoff`, so
 * retries of many tasks failing together spread out without breaking the policy.
 */
export function jitteredBackoffSeconds(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const wait = backoffSeconds(policy, retry);
  return Math.max(policy.min_backoff, wait * (0.5 + random() / 2));
}

/**
 * Whether a task that has now failed `attempts` times may run again. Like Cloud Tasks,
 * when both limits are set retrying stops only once both are reached; 0 duration and
 * -1 attempts mean "no limit" for that dimension.
 */
export function mayRetry(policy: RetryPolicy, attempts: number, firstAttemptMs: number, nowMs: number): boolean {
  const attemptsSpent = policy.max_attempts !== -1 && attempts >= policy.max_attempts;
  const durationSpent = policy.max_retry_duration > 0 && nowMs - firstAttemptMs >= policy.max_retry_duration * 1000;
  if (policy.max_retry_duration === 0) return !attemptsSpent;
  if (policy.max_attempts === -1) return !durationSpent;
  return !(attemptsSpent && durationSpent);
}

/**
 * The longest a task can keep retrying under `policy`, in seconds, from its first attempt to
 * its last (un-jittered waits are the upper bound; attempt durations not counted). Retrying
 * stops only once every set limit is reached, so with both limits it is the larger.
 */
export function retryLifetimeSeconds(policy: RetryPolicy): number {
  let schedule = 0;
  if (policy.max_attempts !== -1) {
    for (let retry = 1; retry < policy.max_attempts; retry++) schedule += backoffSeconds(policy, retry);
  }
  if (policy.max_retry_duration === 0) return schedule;
  if (policy.max_attempts === -1) return policy.max_retry_duration;
  return Math.max(schedule, policy.max_retry_duration);
}
