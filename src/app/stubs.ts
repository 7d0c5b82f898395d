/** Typed Durable Object stubs: the app's AppQueue by name, and the registry singleton. */
import type { AppQueue } from "./app-queue";
import type { AppRegistry } from "../registry/app-registry";

/** Object ids by app name: idFromName hashes the name, and an id is a plain value any request may reuse. */
const appIds = new Map<string, DurableObjectId>();

export function appQueue(env: Env, app: string): DurableObjectStub<AppQueue> {
  let id = appIds.get(app);
  if (!id) {
    if (appIds.size > 10_000) appIds.clear();
    id = env.APP_QUEUE.idFromName(app);
    appIds.set(app, id);
  }
  return env.APP_QUEUE.get(id);
}

export function registry(env: Env): DurableObjectStub<AppRegistry> {
  return env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
}

/**
 * Task ids carry the app's number; this resolves it to the app's name. Numbers are
 * never reused, so a resolved name never goes stale and is cached for the isolate's life.
 */
const appNames = new Map<number, string>();

export async function appNameOf(env: Env, number: number): Promise<string | null> {
  const cached = appNames.get(number);
  if (cached) return cached;
  const name = await registry(env).nameOf(number);
  if (name) appNames.set(number, name);
  return name;
}
