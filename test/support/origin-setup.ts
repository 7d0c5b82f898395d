// Starts the real Node HTTP origin that workerd-side tests deliver to.
import type { TestProject } from "vitest/node";
import { startOrigin } from "../../scripts/origin.mjs";

export default async function setup(project: TestProject) {
  const origin = await startOrigin({ quiet: true });
  project.provide("originPort", origin.port);
  return () => origin.close();
}
