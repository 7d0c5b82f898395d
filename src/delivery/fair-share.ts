/**
 * Which unit of a consumer batch takes the next free slot (6 origin fetches at a time), so that
 * one app's slow origin cannot hold up another app's tasks. Pure: the consumer takes and
 * releases, this keeps the counts.
 *
 * The rule: a free slot goes to the app, among those with units waiting, that holds the fewest
 * slots; ties go to the app that started a unit least recently (round-robin). Within an app,
 * units start in batch order.
 *
 * The bound: an app starts a unit only while it holds no more slots than any other app with
 * units waiting, so while n apps (itself included) have units waiting it holds at most
 * ⌈slots / n⌉ of them (3 of 6 with two apps), and no slot is left idle while a unit waits. Every
 * unit of a batch waits from its start, so with two apps the other one always runs at least 3 at
 * a time: a task of app B waits for B's own tasks, never for a slow task of app A. With n apps a
 * waiting app that holds fewer slots than another is served first at the next free slot.
 */
export class FairShare<Unit> {
  readonly #slots: number;
  /** Units not started yet, by app, in batch order. */
  readonly #waiting = new Map<string, Unit[]>();
  /** Slots each app holds now. */
  readonly #held = new Map<string, number>();
  /** Apps in the order they last started a unit, least recent first (the round-robin). */
  #order: string[] = [];

  /** @param slots how many units run at once (the consumer's 6 connections) */
  constructor(slots: number, units: Iterable<{ app: string; unit: Unit }>) {
    this.#slots = slots;
    for (const { app, unit } of units) {
      let queue = this.#waiting.get(app);
      if (!queue) {
        this.#waiting.set(app, (queue = []));
        this.#held.set(app, 0);
        this.#order.push(app);
      }
      queue.push(unit);
    }
  }

  /** Units not started yet. */
  get waiting(): number {
    let count = 0;
    for (const queue of this.#waiting.values()) count += queue.length;
    return count;
  }

  /** Slots held now, by app. */
  held(app: string): number {
    return this.#held.get(app) ?? 0;
  }

  /** Apps with units waiting. */
  appsWaiting(): number {
    let count = 0;
    for (const queue of this.#waiting.values()) if (queue.length > 0) count++;
    return count;
  }

  /** The unit to start in a free slot (the slot is now its app's); null when none waits or no slot is free. */
  take(): { app: string; unit: Unit } | null {
    let total = 0;
    for (const held of this.#held.values()) total += held;
    if (total >= this.#slots) return null;
    let best: string | null = null;
    for (const app of this.#order) {
      if (this.#waiting.get(app)!.length === 0) continue;
      if (best === null || this.held(app) < this.held(best)) best = app;
    }
    if (best === null) return null;
    const unit = this.#waiting.get(best)!.shift()!;
    this.#held.set(best, this.held(best) + 1);
    this.#order = [...this.#order.filter((app) => app !== best), best];
    return { app: best, unit };
  }

  /** A unit of `app` gave its slot back. */
  release(app: string): void {
    this.#held.set(app, Math.max(0, this.held(app) - 1));
  }

  /** Takes every unit not started yet (the consumer's deadline came), in batch order by app. */
  drain(): Unit[] {
    const units = [...this.#waiting.values()].flat();
    for (const queue of this.#waiting.values()) queue.length = 0;
    return units;
  }
}
