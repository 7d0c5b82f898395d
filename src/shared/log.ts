/**
 * Structured logs: one JSON object per line, `{"level", "event", …fields}`, so Workers Logs
 * (`[observability]`) indexes every field (app, task, attempt, status, duration_ms) and a
 * query can filter on them. No secret, body or credential is ever a field.
 */
export type LogLevel = "info" | "warn" | "error";

export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** An error as log fields: its name and message, and its stack for the unexpected ones. */
function errorFields(error: unknown, withStack: boolean): LogFields {
  if (!(error instanceof Error)) return { error: String(error) };
  return { error: `${error.name}: ${error.message}`, ...(withStack && error.stack ? { stack: error.stack } : {}) };
}

export function log(level: LogLevel, event: string, fields: LogFields = {}, error?: unknown): void {
  const line = JSON.stringify({
    level,
    event,
    ...fields,
    ...(error === undefined ? {} : errorFields(error, level === "error")),
  });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
