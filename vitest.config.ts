import { defineConfig } from "vitest/config";

// Unit tests live beside the code (src/**/*.test.ts); suites that start real
// processes (registries, Docker engines) live under test/.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Real registries and engines are heavy on a 2-core machine: a few files at once.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
