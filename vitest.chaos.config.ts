import { defineConfig } from "vitest/config";

// `npm run chaos`: the kill -9 loop of test/chaos/, apart from `npm test` (it runs for minutes).
export default defineConfig({
  test: {
    include: ["test/chaos/**/*.test.ts"],
    environment: "node",
    hookTimeout: 120_000,
  },
});
