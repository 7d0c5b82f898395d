/**
 * Where the Worker sends a submission. An app with shards takes it in one of the shard objects
 * of the current partition, straight from the Worker: what the app's own object last answered
 * about how it stores tasks (`route`, in every submission's answer) is kept per isolate. Without
 * a route, or when the shard is not open yet (a new partition), the submission goes to the app's
 * own object, which opens the shard and passes it on. A submission costs one object call, but
 * for the first of a partition's shard per isolate.
 */
import type { StorageRoute, SubmitInput, Submitted } from "../app/contract";
import { appQueue } from "../app/stubs";
import type { Outcome } from "../http/errors";
import { pickShard, shardPlace } from "./routing";

/** A route is asked again of the app's own object after this long (an app deleted, made anew). */
export const ROUTE_TTL_MS = 60_000;

const routes = new Map<string, StorageRoute & { atMs: number }>();

export async function submitToStore(env: Env, app: string, input: SubmitInput): Promise<Outcome<Submitted>> {
  const now = Date.now();
  const route = routes.get(app);
  if (route && now - route.atMs < ROUTE_TTL_MS && route.shards > 1) {
    const place = shardPlace(app, route.partition, pickShard(route.shards, input.options.deduplicationId), now);
    const outcome = await appQueue(env, place.name).submit({ ...input, shard: place.name });
    if (outcome.ok || outcome.error.code !== "shard_not_open") return remember(app, outcome, now);
  }
  return remember(app, await appQueue(env, app).submit(input), now);
}

function remember(app: string, outcome: Outcome<Submitted>, nowMs: number): Outcome<Submitted> {
  if (outcome.ok && outcome.value.route) {
    if (routes.size > 10_000) routes.clear();
    routes.set(app, { ...outcome.value.route, atMs: nowMs });
  } else if (!outcome.ok && outcome.error.status === 404) routes.delete(app);
  return outcome;
}

/** Forgets every route (tests). */
export const forgetRoutes = (): void => routes.clear();
