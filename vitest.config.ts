import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// No network here: Miniflare must not try to download the `Request.cf` object.
process.env["CLOUDFLARE_CF_FETCH_ENABLED"] ??= "false";

/** Test credentials; the same pair signs requests in every scope. */
export const TEST_KEYS = {
  ADMIN_ACCESS_KEY: "test-admin-ak",
  ADMIN_SECRET_KEY: "test-admin-sk",
  KEY_ENCRYPTION_SECRET: "test-key-encryption-secret",
};

export default defineConfig({
  test: {
    projects: [
      {
        // Pure modules, run in Node (the vendors' SDKs live here too).
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" },
      },
      {
        // The Worker and its Durable Objects inside workerd, with Miniflare's real Queues.
        // A real Node HTTP origin is started once (globalSetup) and its port injected.
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            // src/index.ts with AppQueue's test-only hooks (test/worker/test-app-queue.ts).
            main: "./test/worker/entry.ts",
            miniflare: {
              bindings: {
                ...TEST_KEYS,
                ALLOW_PRIVATE_ORIGINS: "true",
                TEST_ORIGIN: `http://127.0.0.1:${inject<number>("originPort")}`,
                FUZZ_SEED: process.env["FUZZ_SEED"] ?? "",
              },
              queueConsumers: { "asyncgate-tasks": { maxBatchTimeout: 0.05 } },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          globalSetup: ["test/support/origin-setup.ts"],
        },
      },
      {
        // `wrangler dev` started for real, driven from Node with real clients.
        test: {
          name: "e2e",
          // The console's browser suite (Chromium) too: one wrangler dev at a time.
          include: ["test/e2e/**/*.test.ts", "test/browser/**/*.test.ts"],
          environment: "node",
          // One wrangler dev at a time: on two cores, a load test beside the heartbeat soak
          // would spoil its 15–17 s timing.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
