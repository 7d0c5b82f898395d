/** The one duration syntax of the gateway and its CLI: `500ms`, `30` (seconds), `10s`, `5m`, `2h`, `1d`. Pure. */

/** A duration in seconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return null;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] ?? "s"] ?? 1;
  return Number(match[1]) * unit;
}
