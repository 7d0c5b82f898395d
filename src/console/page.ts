/** The shell's contract with its views, in a module of its own: the views import it, not main.ts, which imports them. */
import type { AsyncgateClient } from "../client/index";
import type { Keys } from "./session";

/** What a view gets: the signed-in client and the page's shared parts. */
export interface Page {
  client: AsyncgateClient;
  keys: Keys;
  /** A message in the status line (read out by screen readers). */
  notify(message: string, kind?: "info" | "error"): void;
  /** Shows an error; refused keys sign out. */
  fail(error: unknown): void;
  /** `run` as a handler whose error is shown with `fail`, unless the view was left meanwhile. */
  guard(run: () => Promise<unknown>): () => Promise<void>;
  /** Breadcrumbs after the brand: [label, href] pairs, the last one the current view. */
  crumbs(...parts: [string, string?][]): void;
  /** Runs when the view is left (timers, the live feed). */
  onLeave(stop: () => void): void;
}
