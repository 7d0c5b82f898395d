// The Worker the workerd tests run: the gateway's own entry, with its app object swapped for
// TestAppQueue (the same class plus test-only hooks). A name exported here wins over `export *`.
export * from "../../src/index";
export { default } from "../../src/index";
export { TestAppQueue as AppQueue } from "./test-app-queue";
