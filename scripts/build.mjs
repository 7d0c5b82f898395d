// Builds the client library and the CLI into dist/ (run by `npm run build`, and by `prepare` on install).
import { build } from "esbuild";

await build({
  entryPoints: { client: "src/client/index.ts" },
  outdir: "dist",
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  external: ["node:http"],
  sourcemap: true,
  logLevel: "warning",
});

await build({
  entryPoints: { cli: "src/cli.ts" },
  outdir: "dist",
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node22",
  banner: { js: "#!/usr/bin/env node" },
  logLevel: "warning",
});
