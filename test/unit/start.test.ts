// Proves `npm start` refuses a port already taken with one line naming it (and how to pick others), before starting anything.
import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("npm start", () => {
  let busy: Server;
  let port: number;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    port = (busy.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

  it("refuses a busy port with one line naming it and the variables to pick others, and exits non-zero", () => {
    const run = spawnSync(process.execPath, ["scripts/start.mjs"], {
      env: { ...process.env, PORT: String(port), ORIGIN_PORT: "0" },
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).toBe(1);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`port ${port} is in use`);
    expect(lines[0]).toContain("PORT=");
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack
    expect(run.stdout).toBe("");
  });
});
