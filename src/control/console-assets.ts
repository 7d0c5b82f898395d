/**
 * The web console (src/console), served from Workers static assets at `/console` on the control
 * host only: with `run_worker_first`, an app host's `/console/…` stays a task submission. The
 * page is public; every API call it makes is signed in the browser.
 */
import { GatewayError } from "../http/errors";

export const isConsolePath = (pathname: string) => pathname === "/console" || pathname.startsWith("/console/");

/** No third-party anything: scripts, styles and connections to this host only (the feed included). */
const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  // Revalidated on every load (the assets' ETags make that a 304): a deploy shows at once.
  "Cache-Control": "no-cache",
};

export async function serveConsole(request: Request, env: Env): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    throw new GatewayError(405, "method_not_allowed", `${request.method} is not allowed on the console`);
  }
  const url = new URL(request.url);
  if (url.pathname === "/console" || url.pathname === "/console/") url.pathname = "/console/index.html";
  const asset = await env.ASSETS.fetch(new Request(url, { method: request.method, headers: request.headers }));
  if (asset.status === 404) throw new GatewayError(404, "not_found", `no console file: ${url.pathname}`);
  const response = new Response(asset.body, asset);
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.headers.set(name, value);
  return response;
}
