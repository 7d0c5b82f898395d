/** Typed Durable Object stubs: the app's AppQueue by name, and the registry singleton. */
import type { AppQueue } from "../app/app-queue";
import type { AppRegistry } from "../registry/app-registry";

export function appQueue(env: Env, app: string): DurableObjectStub<AppQueue> {
  return env.APP_QUEUE.get(env.APP_QUEUE.idFromName(app));
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
