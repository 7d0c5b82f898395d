/**
 * How the client reaches the gateway. In browsers and in production every host resolves
 * and `fetch` is all there is. Locally, `<app>.async.localhost` does not resolve in Node
 * and `fetch` cannot set a Host header, so with `connectTo` app-host requests go over
 * node:http to that address with the app's Host header.
 */
import { concatBytes } from "../shared/encoding";

export interface HttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  text: string;
}

export type Transport = (request: HttpRequest) => Promise<HttpResponse>;

export function fetchTransport(fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis)): Transport {
  return async ({ url, method, headers, body }) => {
    const response = await fetchImpl(url, {
      method,
      headers,
      // ArrayBuffer-backed, as DOM's lib (the console's build) wants a body to be.
      body:
        method === "GET" || method === "HEAD" || body.byteLength === 0 ? undefined : (body as Uint8Array<ArrayBuffer>),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
}

/** Sends to `connectTo` (e.g. http://127.0.0.1:8787) keeping the URL's host as the Host header. Node only. */
export function connectToTransport(connectTo: string): Transport {
  const target = new URL(connectTo);
  return async ({ url, method, headers, body }) => {
    const { request } = await import("node:http");
    const parsed = new URL(url);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: target.hostname,
          port: target.port || 80,
          method,
          path: parsed.pathname + parsed.search,
          headers: { ...headers, host: parsed.host, "content-length": String(body.byteLength) },
        },
        (res) => {
          const chunks: Uint8Array[] = [];
          res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
          res.on("end", () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (typeof value === "string") responseHeaders.set(name, value);
            }
            resolve({
              status: res.statusCode ?? 0,
              headers: responseHeaders,
              text: new TextDecoder().decode(concatBytes(...chunks)),
            });
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  };
}
