// The peer: a Node HTTP server that verifies the same Qiniu token, records the request and
// enqueues it with BullMQ on a local redis-server, answering 202 {"id"}; a BullMQ worker in the
// same process delivers each job to the origin, as asyncgate's consumer does. Started by bench/run.mjs.
//   node bench/bullmq-peer.mjs <port> <redis port> <origin url>
import { createServer } from "node:http";
import { Queue, Worker } from "bullmq";
import Redis from "ioredis";
import qiniu from "qiniu";

const [port, redisPort] = process.argv.slice(2, 4).map(Number);
const origin = process.argv[4];
const mac = new qiniu.auth.digest.Mac(process.env.BENCH_ACCESS_KEY, process.env.BENCH_SECRET_KEY);
// BullMQ 6 under ESM wants a constructed client.
const queue = new Queue("tasks", {
  connection: new Redis({ host: "127.0.0.1", port: redisPort, maxRetriesPerRequest: null }),
});

new Worker(
  "tasks",
  async (job) => {
    const { method, path, header, body } = job.data;
    const response = await fetch(origin + path, {
      method,
      headers: { "content-type": header["content-type"] ?? "application/octet-stream" },
      body: Buffer.from(body, "base64"),
      signal: AbortSignal.timeout(60_000),
    });
    await response.arrayBuffer();
    if (response.status < 200 || response.status > 299) throw new Error(`HTTP ${response.status}`);
  },
  { connection: new Redis({ host: "127.0.0.1", port: redisPort, maxRetriesPerRequest: null }), concurrency: 16 },
);

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    const body = Buffer.concat(chunks);
    const url = `http://${req.headers.host}${req.url}`;
    const expected = qiniu.util.generateAccessTokenV2(
      mac,
      url,
      req.method,
      req.headers["content-type"] ?? "",
      body.toString("utf8"),
      {},
    );
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"error":"bad token"}');
      return;
    }
    const job = await queue.add(
      "task",
      {
        method: req.method,
        path: req.url,
        header: req.headers,
        body: body.toString("base64"),
      },
      { attempts: 5, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: true },
    );
    res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ id: job.id }));
  });
}).listen(port, "127.0.0.1", () => console.log(`bullmq peer ready on ${port}`));
