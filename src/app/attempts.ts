/**
 * The queue consumer's calls about attempts, each in the object's group commit: a begin
 * (0 → 1 when due and admitted) and a finish (the attempt's result), one at a time or several
 * in one RPC, where one that cannot be stored fails alone and its neighbours go on.
 */
import { log } from "../shared/log";
import type { AttemptReport, AttemptResult, BeginResult, FinishResult, PutBack } from "../shared/types";
import type { GroupCommit } from "./group-commit";
import type { StateMachine } from "./state-machine";

export class Attempts {
  readonly #group: GroupCommit;
  readonly #machine: StateMachine;
  readonly #app: () => string | undefined;

  constructor(group: GroupCommit, machine: StateMachine, app: () => string | undefined) {
    this.#group = group;
    this.#machine = machine;
    this.#app = app;
  }

  begin(taskId: string, run?: string): Promise<BeginResult> {
    return this.#group.run(() => this.#machine.begin(taskId, Date.now(), run));
  }

  /** Each a `begin` of its own, named by `runs[i]` for a put-back; one not stored answers `{run: false, reason: "error"}`. */
  async beginMany(taskIds: string[], runs: (string | null)[]): Promise<BeginResult[]> {
    const settled = await Promise.allSettled(taskIds.map((taskId, i) => this.begin(taskId, runs[i] ?? undefined)));
    return settled.map((outcome): BeginResult =>
      outcome.status === "fulfilled" ? outcome.value : { run: false, reason: "error" },
    );
  }

  /**
   * Records attempt `attempt`'s result; ignored unless that attempt is the one running. A
   * result that cannot be stored whole (a row over SQLite's limits) is stored without the
   * response's headers and body, so the attempt still counts and the task moves on.
   */
  async finish(taskId: string, attempt: number, result: AttemptResult | PutBack): Promise<FinishResult> {
    try {
      return await this.#group.run(() => this.#machine.finishAttempt(taskId, attempt, result, Date.now()));
    } catch (error) {
      // Its savepoint rolled back alone; store what surely fits, in the next group.
      if (result.kind !== "response") throw error;
      log("error", "response_not_stored", { app: this.#app(), task: taskId, attempt }, error);
      const bare: AttemptResult = { ...result, header: {}, body: new Uint8Array() };
      return this.#group.run(() => this.#machine.finishAttempt(taskId, attempt, bare, Date.now()));
    }
  }

  /** Each a `finish` of its own; one not stored answers null (the consumer tries it again). */
  async finishMany(reports: AttemptReport[]): Promise<(FinishResult | null)[]> {
    const settled = await Promise.allSettled(
      reports.map(({ taskId, attempt, result }) => this.finish(taskId, attempt, result)),
    );
    return settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : null));
  }
}
