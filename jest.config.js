/** @type {import('jest').Config} */
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022", parser: { syntax: "typescript" } } }] },
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testMatch: ["<rootDir>/__tests__/**/*.test.ts"],
  // Child processes (hubs, CLIs) run the compiled build: built once here, before any test.
  globalSetup: "<rootDir>/__tests__/support/build.ts",
  testTimeout: 20000,
  maxWorkers: 2,
};
