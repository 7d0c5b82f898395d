// Proves the tree stays as the README's Layout section says: every file of src/ is in the source
// map (a row names it, or its folder's `*` row does), every row names files that exist, and no
// source file is over 600 lines. The import rules themselves are checked by dependency-cruiser
// (`npm run check:imports`, in `npm test`'s pretest).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MAX_LINES = 600;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const sources = filesUnder("src").filter((path) => /\.(ts|mjs|js)$/.test(path) && !path.endsWith(".d.ts"));
const readme = readFileSync("README.md", "utf8");
const sourceMap = readme.slice(
  readme.indexOf("## Source map"),
  readme.indexOf("\n## ", readme.indexOf("## Source map") + 1),
);
/** The paths the map's first column names (a row may name several, comma-separated). */
const mapped = [...sourceMap.matchAll(/^\| (`[^|]+`) \|/gm)].flatMap((row) =>
  [...row[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!),
);

describe("layout", () => {
  it("every source file is in the README's source map", () => {
    const covered = (path: string) =>
      mapped.some((entry) => entry === path || (entry.endsWith("/*") && path.startsWith(entry.slice(0, -1))));
    expect(sources.filter((path) => !covered(path))).toEqual([]);
  });

  it("every file the source map names exists", () => {
    const missing = mapped.filter((entry) =>
      entry.endsWith("/*") ? !existsSync(entry.slice(0, -2)) : !existsSync(entry),
    );
    expect(missing).toEqual([]);
  });

  it(`no source file is over ${MAX_LINES} lines`, () => {
    const long = sources
      .map((path) => ({ path, lines: readFileSync(path, "utf8").split("\n").length - 1 }))
      .filter((file) => file.lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});
