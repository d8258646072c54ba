import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Migrates the test database once per run; each file gets a copy (test/support/database.ts).
    globalSetup: ['test/support/global-setup.ts'],
    // Kills what a test started when it ends, however it ends.
    setupFiles: ['test/support/children.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Test files start real servers and databases; two cores run two files at a time.
    maxWorkers: 2,
  },
});
