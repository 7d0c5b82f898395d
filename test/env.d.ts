// Bindings and provided values that exist only under test.
import "vitest";

declare global {
  namespace Cloudflare {
    interface Env {
      /** Base URL of the real Node origin started by test/support/origin-setup.ts. */
      TEST_ORIGIN: string;
      /** Replays a fuzz run: `FUZZ_SEED=<seed> npm test`. */
      FUZZ_SEED: string;
    }
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    originPort: number;
  }
}
