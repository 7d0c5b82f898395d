// Builds the published entry points into dist/ (run by `npm run build`, and by `prepare` on install):
// the client library, the webhook Receiver, the web console and the CLI (esbuild), and their type
// declarations (tsc).
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { build } from "esbuild";

const common = { outdir: "dist", bundle: true, format: "esm", logLevel: "warning" };

// The client runs in browsers and Node alike; node:http is loaded only for `connectTo`.
await build({
  ...common,
  entryPoints: { client: "src/client/index.ts" },
  platform: "neutral",
  target: "es2022",
  external: ["node:http"],
  sourcemap: true,
});

// The Receiver has no dependencies: Web Crypto only, for Node, Workers and browsers.
await build({
  ...common,
  entryPoints: { receiver: "src/receiver/index.ts" },
  platform: "neutral",
  target: "es2022",
  sourcemap: true,
});

// The web console, served from Workers static assets (dist/public/console).
await import("./build-console.mjs");

await build({
  ...common,
  entryPoints: { cli: "src/cli/index.ts" },
  platform: "node",
  target: "node22",
  banner: { js: "#!/usr/bin/env node" },
});

// .d.ts files referenced by package.json "exports": consumers never type-check our sources.
rmSync("dist/types", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
