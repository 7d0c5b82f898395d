// Builds the client library and the CLI into dist/ (run by `npm run build`, and by `prepare` on install).
import { build } from "esbuild";

const common = { outdir: "dist", bundle: true, format: "esm", logLevel: "warning" };

// The client runs in browsers and Node alike; node:http is loaded only for `connectTo`.
await build({ ...common, entryPoints: { client: "src/client/index.ts" }, platform: "neutral", target: "es2022", external: ["node:http"], sourcemap: true });

await build({ ...common, entryPoints: { cli: "src/cli.ts" }, platform: "node", target: "node22", banner: { js: "#!/usr/bin/env node" } });
