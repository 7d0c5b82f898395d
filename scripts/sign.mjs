// Signs a request with Qiniu's access token (the official `qiniu` SDK's
// generateAccessTokenV2) and prints the Authorization header value.
//   node scripts/sign.mjs <METHOD> <URL> [body] [content-type]
// Keys come from ASYNCGATE_ACCESS_KEY / ASYNCGATE_SECRET_KEY, else from .dev.vars.
import { readFileSync, existsSync } from "node:fs";
import qiniu from "qiniu";

export function localKeys() {
  let accessKey = process.env.ASYNCGATE_ACCESS_KEY;
  let secretKey = process.env.ASYNCGATE_SECRET_KEY;
  const file = existsSync(".dev.vars") ? ".dev.vars" : ".dev.vars.example";
  if ((!accessKey || !secretKey) && existsSync(file)) {
    const vars = Object.fromEntries(
      readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => /^\w+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1).trim()]),
    );
    accessKey ??= vars.ADMIN_ACCESS_KEY;
    secretKey ??= vars.ADMIN_SECRET_KEY;
  }
  if (!accessKey || !secretKey) throw new Error("no keys: set ASYNCGATE_ACCESS_KEY and ASYNCGATE_SECRET_KEY");
  return { accessKey, secretKey };
}

/** @param {string} method @param {string} url @param {string} [body] @param {string} [contentType] */
export function sign(method, url, body = "", contentType = body ? "application/json" : "") {
  const { accessKey, secretKey } = localKeys();
  const mac = new qiniu.auth.digest.Mac(accessKey, secretKey);
  return qiniu.util.generateAccessTokenV2(mac, url, method, contentType || undefined, body || undefined, {});
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [method, url, body, contentType] = process.argv.slice(2);
  if (!method || !url) {
    console.error("usage: node scripts/sign.mjs <METHOD> <URL> [body] [content-type]");
    process.exit(2);
  }
  console.log(sign(method, url, body, contentType));
}
