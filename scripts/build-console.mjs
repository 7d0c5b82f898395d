// Builds the web console (src/console) into dist/public/console: the Worker serves it from
// Workers static assets at /console on the control host. Run by `npm run build`, before the
// tests (pretest) and by `npm start`. Prints each file's size, raw and gzipped.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const out = "dist/public/console";
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { console: "src/console/main.ts" },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  // The client loads node:http only for `connectTo`, which the console never sets.
  external: ["node:http"],
  logLevel: "warning",
});
for (const file of ["index.html", "console.css", "favicon.svg"])
  copyFileSync(join("src/console", file), join(out, file));

const sizes = readdirSync(out).map((file) => {
  const bytes = readFileSync(join(out, file));
  return { file, bytes: bytes.byteLength, gzip: gzipSync(bytes, { level: 9 }).byteLength };
});
const total = sizes.reduce((sum, { gzip }) => sum + gzip, 0);
console.log(
  `console: ${sizes.map(({ file, bytes, gzip }) => `${file} ${bytes} B (${gzip} B gzip)`).join(", ")}; ${total} B gzip in all`,
);
