// Starts `wrangler dev` for real (workerd + Miniflare Queues and Durable Objects) and talks to it
// over loopback with node:http, which lets a test send any Host header.
import { spawn, type ChildProcess } from "node:child_process";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import qiniu from "qiniu";

export const E2E_KEYS = { accessKey: "e2e-admin-ak", secretKey: "e2e-admin-sk" };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Gateway {
  port: number;
  stop(): Promise<void>;
  /** SIGKILL to wrangler and workerd at once: a crash, no graceful shutdown. */
  kill(): Promise<void>;
  output(): string;
}

/** Process groups of the gateways started here and not yet stopped. */
const running = new Set<number>();
// If the test process ends before a gateway was stopped (a hook timed out, a crash), take
// wrangler and workerd down with it: no gateway outlives its test run.
process.once("exit", () => {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

export async function startGateway(options: { port: number; persistTo: string }): Promise<Gateway> {
  const child: ChildProcess = spawn(
    "node_modules/.bin/wrangler",
    [
      "dev",
      "-c",
      "wrangler.toml",
      "--ip",
      "127.0.0.1",
      "--port",
      String(options.port),
      "--inspector-port",
      String(await freePort()),
      "--persist-to",
      options.persistTo,
      "--var",
      "ALLOW_PRIVATE_ORIGINS:true",
      "--var",
      `ADMIN_ACCESS_KEY:${E2E_KEYS.accessKey}`,
      "--var",
      `ADMIN_SECRET_KEY:${E2E_KEYS.secretKey}`,
      "--show-interactive-dev-session=false",
    ],
    {
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        X_LOCAL_OBSERVABILITY: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        CI: "true",
        NO_COLOR: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so stopping it stops workerd too.
      detached: true,
    },
  );
  running.add(child.pid!);
  child.once("exit", () => running.delete(child.pid!));
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!/Ready on/.test(output)) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, "SIGKILL");
      throw new Error(`wrangler dev did not start in time:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port: options.port,
    output: () => output,
    kill: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid!, "SIGKILL");
      await exited;
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          // already gone
        }
      };
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = unknown>(): T;
}

/** One HTTP request to the gateway on loopback with the given Host, signed by the official qiniu SDK. */
export async function signedCall(
  port: number,
  host: string,
  method: string,
  pathAndQuery: string,
  options: {
    body?: Buffer | string;
    headers?: Record<string, string>;
    unsigned?: boolean;
    /** Sign with these keys instead of the admin pair. */
    keys?: { accessKey: string; secretKey: string };
    /** Fail the call after this long without a response. @default 30000 */
    timeoutMs?: number;
  } = {},
): Promise<HttpResult> {
  const body = options.body === undefined ? Buffer.alloc(0) : Buffer.from(options.body);
  const headers: Record<string, string> = { host, ...options.headers };
  if (options.body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) {
    headers["content-type"] = "application/json";
  }
  if (!options.unsigned) {
    const keys = options.keys ?? E2E_KEYS;
    const mac = new qiniu.auth.digest.Mac(keys.accessKey, keys.secretKey);
    const contentType = headers["content-type"] ?? "";
    const signedBody = contentType === "application/octet-stream" ? undefined : body.toString("utf8");
    headers["authorization"] = qiniu.util.generateAccessTokenV2(
      mac,
      `http://${host}${pathAndQuery}`,
      method,
      contentType,
      signedBody,
      headers,
    );
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path: pathAndQuery, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const data = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: data,
          json: <T>() => JSON.parse(data.toString("utf8")) as T,
        });
      });
      // A response cut off mid-body (the gateway killed) ends with "close" and no "end".
      res.on("error", reject);
      res.on("close", () => {
        if (!res.complete) reject(new Error("the response was cut off"));
      });
    });
    req.on("error", reject);
    req.setTimeout(options.timeoutMs ?? 30_000, () =>
      req.destroy(new Error(`no response in ${options.timeoutMs ?? 30_000} ms`)),
    );
    req.end(body);
  });
}
