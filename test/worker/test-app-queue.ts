// The app object as the workerd tests run it (test/worker/entry.ts): AppQueue plus the hooks
// only tests need, so they stay out of the production class.
import { AppQueue } from "../../src/app/app-queue";
import type { ReadMeter, TaskStore } from "../../src/app/store";

export class TestAppQueue extends AppQueue {
  /** Reads again what the store keeps in memory, after a test wrote to the object's SQLite directly. */
  resetCaches(): void {
    this.store.tasks.forgetCaches();
    this.store.notifications.forgetCaches();
  }

  /** The object's own task store (its running attempts are in memory: another store would not see them). */
  get tasks(): TaskStore {
    return this.store.tasks;
  }

  /** Ends a running attempt's lease now (its consumer presumed gone); false when it does not run. */
  async expireLease(taskId: string): Promise<boolean> {
    return this.store.tasks.setLease(taskId, Date.now() - 1);
  }

  /** Task messages out that no attempt has begun from (the queue window's count). */
  async inFlight(): Promise<number> {
    return this.store.tasks.inFlight();
  }

  /** Marks a waiting task's queue message as sent at `atMs` (kept in memory: see TaskStore.sentAt). */
  async markSent(taskId: string, atMs: number): Promise<void> {
    this.store.tasks.clearDispatched([taskId]);
    this.store.tasks.markDispatched([taskId], atMs);
  }

  /** When the waiting task's queue message was sent; null when none is out. */
  async sentAt(taskId: string): Promise<number | null> {
    return this.store.tasks.sentAt(taskId);
  }

  /** Writes the counts' checkpoint now (with the tasks whose message is out or attempt running). */
  async writeCheckpoint(): Promise<void> {
    this.store.tasks.checkpoint(Date.now(), true);
  }

  /** The largest page the resume replay read since the object started: rows and bytes. */
  async replayReadMeter(): Promise<ReadMeter> {
    return { ...this.store.reads.largestReplayPage };
  }
}
