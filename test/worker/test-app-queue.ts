// The app object as the workerd tests run it (test/worker/entry.ts): AppQueue plus the hooks
// only tests need, so they stay out of the production class.
import { AppQueue } from "../../src/app/app-queue";
import type { ReadMeter } from "../../src/app/store";

export class TestAppQueue extends AppQueue {
  /** Reads again what the store keeps in memory, after a test wrote to the object's SQLite directly. */
  resetCaches(): void {
    this.store.tasks.forgetCaches();
    this.store.notifications.forgetCaches();
  }

  /** The largest page the resume replay read since the object started: rows and bytes. */
  async replayReadMeter(): Promise<ReadMeter> {
    return { ...this.store.tasks.largestReplayPage };
  }
}
