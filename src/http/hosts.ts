/** Host dispatch: which requests are submissions for an app, which go to the control API. Pure. */

export const APP_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export type HostRoute = { kind: "app"; app: string } | { kind: "control" };

/** The host without its port, lowercased. */
export function hostname(host: string): string {
  const lower = host.trim().toLowerCase();
  if (lower.startsWith("[")) return lower.slice(0, lower.indexOf("]") + 1);
  const colon = lower.lastIndexOf(":");
  return colon === -1 ? lower : lower.slice(0, colon);
}

/**
 * `<app><suffix>` is a submission for `app`; every other host is the control host.
 * A host that has the suffix but an invalid app label is an app host for an app that
 * cannot exist, reported as such (not silently sent to the control API).
 */
export function routeHost(host: string, appHostSuffix: string): HostRoute {
  const name = hostname(host);
  const suffix = appHostSuffix.toLowerCase();
  if (!suffix || !name.endsWith(suffix) || name.length === suffix.length) return { kind: "control" };
  return { kind: "app", app: name.slice(0, -suffix.length) };
}

/** The control host matching an app host: `demo.async.example.com:8787` → `async.example.com:8787`. */
export function controlHostFor(appHost: string, appHostSuffix: string, configured: string): string {
  if (configured) return configured;
  const dot = appHost.indexOf(".");
  const derived = dot === -1 ? appHost : appHost.slice(dot + 1);
  return appHostSuffix.startsWith(".") ? derived : appHost;
}
