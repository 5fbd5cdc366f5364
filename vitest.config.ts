import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: keep file-level parallelism modest so process-spawning tests stay stable.
    maxWorkers: 2,
    // The second lists every suite skipped for something npm does not bring, and why (issue 20).
    reporters: ["default", "./test/helpers/skip-reporter.ts"],
  },
});
