// A small, real HTTP origin for the demo and the tests. It echoes what it receives
// and can be told to misbehave by path:
//   /status/<code>          answers <code>
//   /sleep/<ms>             answers 200 after <ms>
//   /flaky/<key>/<n>        answers 503 the first <n> times for <key>, then 200
//   /no-retry/<code>        answers <code> with Asyncgate-No-Retry: true
//   /busy/<key>/<s>         answers 429 with Retry-After: <s> the first time for <key>, then 200
//   anything else           200 with a JSON echo of the request
// Every request is logged; GET /__received?task=<id> returns what arrived for a task
// (by its Asyncgate-Task-Id or X-CloudTasks-TaskName header), GET /__received all of it.
// Once told an app's signing secret (`trustSigningSecret`, as `npm start` does for the demo
// app, or POST /__trust with the JSON `asyncgate apps create` printed), it verifies every
// signed request with asyncgate's Receiver and answers 401 to a forgery.
import { createServer } from "node:http";

/** @param {{ port?: number, host?: string, quiet?: boolean, onTrust?: (signingSecret: string) => void }} [options] */
export async function startOrigin(options = {}) {
  /** @type {{ method: string, url: string, headers: Record<string, string | string[] | undefined>, rawHeaders: string[], body: string, at: number }[]} */
  const received = [];
  const flaky = new Map();
  /** @type {import("asyncgate/receiver").Receiver[]} */
  const receivers = [];
  /** Whether a request is signed by a trusted secret; null when no secret is trusted. */
  const verified = async (
    /** @type {Buffer} */ body,
    /** @type {import("node:http").IncomingHttpHeaders} */ headers,
  ) => {
    if (receivers.length === 0) return null;
    for (const receiver of receivers) {
      try {
        return await receiver.verify({ body, headers });
      } catch {
        // try the next secret
      }
    }
    return false;
  };
  /** Verify signed requests with this app signing secret from now on (asyncgate's Receiver, from dist/). */
  const trustSigningSecret = async (/** @type {string} */ signingSecret) => {
    const { Receiver } = await import("asyncgate/receiver");
    receivers.push(new Receiver({ signingSecret }));
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      // Concatenated, not resolved: a request path such as `//x` is a path here, not a host.
      const url = new URL(`http://origin${(req.url ?? "/").startsWith("/") ? "" : "/"}${req.url ?? ""}`);
      if (url.pathname === "/__trust" && req.method === "POST") {
        // Told an app's signing secret: the JSON `asyncgate apps create` (or a rotation) printed.
        let secret;
        try {
          secret = JSON.parse(body.toString("utf8")).signing_secret;
        } catch {
          secret = undefined;
        }
        if (typeof secret !== "string" || !secret.startsWith("whsec_")) {
          res.writeHead(400, { "content-type": "text/plain" });
          res.end('expected JSON with "signing_secret": "whsec_…" (what asyncgate apps create printed)\n');
          return;
        }
        await trustSigningSecret(secret);
        options.onTrust?.(secret);
        if (!options.quiet) console.log("origin: trusting one more app signing secret");
        res.writeHead(204);
        res.end();
        return;
      }
      if (url.pathname === "/__received") {
        const task = url.searchParams.get("task");
        const matching = task
          ? received.filter(
              (r) =>
                r.headers["asyncgate-task-id"] === task ||
                r.headers["x-cloudtasks-taskname"] === task ||
                r.headers["x-appengine-taskname"] === task,
            )
          : received;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(matching));
        return;
      }
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: body.toString("base64"),
        at: Date.now(),
      });
      const signature = await verified(body, req.headers);
      if (!options.quiet)
        console.log(
          `origin: ${req.method} ${req.url} (${body.length} bytes${signature === null ? "" : signature ? ", signature verified" : ", BAD SIGNATURE"})`,
        );
      if (signature === false) {
        res.writeHead(401, { "content-type": "text/plain" });
        res.end("the webhook signature does not verify");
        return;
      }
      const parts = url.pathname.split("/").filter(Boolean);
      if (parts[0] === "status") {
        res.writeHead(Number(parts[1]) || 500, { "content-type": "text/plain", "x-origin": "status" });
        res.end(`status ${parts[1]}`);
      } else if (parts[0] === "sleep") {
        setTimeout(
          () => {
            res.writeHead(200, { "content-type": "text/plain" });
            res.end("slept");
          },
          Number(parts[1]) || 0,
        );
      } else if (parts[0] === "no-retry") {
        res.writeHead(Number(parts[1]) || 500, { "content-type": "text/plain", "asyncgate-no-retry": "true" });
        res.end("do not retry");
      } else if (parts[0] === "busy") {
        const key = `busy:${parts[1] ?? ""}`;
        const seen = (flaky.get(key) ?? 0) + 1;
        flaky.set(key, seen);
        if (seen === 1) res.writeHead(429, { "content-type": "text/plain", "retry-after": parts[2] ?? "1" });
        else res.writeHead(200, { "content-type": "text/plain" });
        res.end(seen === 1 ? "busy" : "ok");
      } else if (parts[0] === "flaky") {
        const key = parts[1] ?? "";
        const seen = (flaky.get(key) ?? 0) + 1;
        flaky.set(key, seen);
        const failures = Number(parts[2]) || 0;
        res.writeHead(seen <= failures ? 503 : 200, { "content-type": "text/plain" });
        res.end(seen <= failures ? `failure ${seen}` : `ok after ${seen - 1} failures`);
      } else {
        res.writeHead(200, { "content-type": "application/json", "x-origin": "echo" });
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: body.toString("utf8"),
            signature_verified: signature,
          }),
        );
      }
    });
  });
  await new Promise((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve(undefined)),
  );
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    trustSigningSecret,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve(undefined));
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const origin = await startOrigin({ port: Number(process.env.ORIGIN_PORT ?? 8788) });
  console.log(`origin listening on ${origin.url}`);
}
