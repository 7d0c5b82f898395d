// `npm run deploy:<environment>`: builds, then deploys one named environment of wrangler.toml.
// Plain `npm run deploy` (no environment) refuses: the top level of wrangler.toml is the local
// setup (`.async.localhost` app hosts, loopback origins allowed), never something to deploy.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const environment = process.argv[2];
const known = [...readFileSync("wrangler.toml", "utf8").matchAll(/^\[env\.([a-z0-9-]+)\]$/gm)].map((match) => match[1]);
if (!environment || !known.includes(environment)) {
  console.error(
    `asyncgate: name the environment to deploy: ${known.map((name) => `npm run deploy:${name}`).join(" or ")}` +
      " (the top level of wrangler.toml is the local setup and is never deployed).",
  );
  process.exit(2);
}
const extra = process.argv.slice(3);
execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
execFileSync(
  process.execPath,
  ["node_modules/wrangler/bin/wrangler.js", "deploy", "-c", "wrangler.toml", "--env", environment, ...extra],
  { stdio: "inherit" },
);
