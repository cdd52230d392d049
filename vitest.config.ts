import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // The fast project runs first; projects with different maxWorkers need distinct groups.
          sequence: { groupOrder: 0 },
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          globalSetup: ['test/integration/global-setup.ts'],
          // The SDK clients the tests create in-process: no Node-version advisory in the test log. The
          // CLIs they spawn get their own environment (test/integration/s3-node-warning.test.ts).
          env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Spawned CLIs, servers and databases: keep the 2-core machine from thrashing.
          maxWorkers: 2,
        },
      },
    ],
  },
});
