/**
 * The queue consumer: each message names a task; begin it in its app's object,
 * replay it to the origin, report the result. Queues deliver at least once, so
 * everything here is safe to repeat: the object decides whether an attempt runs.
 */
import { postNotification } from "./notify";
import { replay } from "./replay";
import { appQueue } from "../shared/stubs";
import type { TaskMessage } from "../shared/types";

/** One consumer invocation may hold at most 6 outgoing connections at once. */
const CONCURRENCY = 6;

export function isTaskMessage(body: unknown): body is TaskMessage {
  if (typeof body !== "object" || body === null) return false;
  const { app, id, notify } = body as Record<string, unknown>;
  return typeof app === "string" && typeof id === "string" && (notify === undefined || notify === "callback" || notify === "notify");
}

/** Tries of a `finish` RPC that fails (the object being reset or overloaded) before the lease takes over. */
const FINISH_TRIES = 4;

export async function consumeTasks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await claimBatch(batch, env);
  const pending = [...batch.messages];
  const worker = async () => {
    for (let message = pending.shift(); message; message = pending.shift()) {
      if (!isTaskMessage(message.body)) {
        console.error("consumer: dropping a malformed message", message.id);
        message.ack();
        continue;
      }
      try {
        if (message.body.notify) await deliverNotification(message.body, message.body.notify, env);
        else await deliverTask(message.body, env);
        message.ack();
      } catch (error) {
        // The object could not be reached: let the queue bring the message back.
        console.error(`consumer: ${message.body.app}/${message.body.id} will be retried`, error);
        message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, pending.length) }, worker));
}

/**
 * Tells each app's object which of its tasks this batch holds (one RPC per app), so messages
 * waiting their turn behind slow origins are not taken for lost and sent again.
 */
async function claimBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const byApp = new Map<string, string[]>();
  for (const message of batch.messages) {
    if (!isTaskMessage(message.body) || message.body.notify) continue;
    const ids = byApp.get(message.body.app) ?? [];
    ids.push(message.body.id);
    byApp.set(message.body.app, ids);
  }
  await Promise.all(
    [...byApp].map(([app, ids]) =>
      appQueue(env, app)
        .claim(ids, batch.messages.length)
        .catch((error: unknown) => console.error(`consumer: claim for ${app} failed (a held message may be sent again)`, error)),
    ),
  );
}

export async function deliverTask(ref: TaskMessage, env: Env): Promise<void> {
  const app = appQueue(env, ref.app);
  const begun = await app.begin(ref.id);
  if (!begun.run) return;
  const result = await replay(begun.delivery);
  // The origin has answered: its result is not dropped for a passing failure to reach the object.
  for (let tries = 1; ; tries++) {
    try {
      // A fresh stub for each retry: a stub that saw the object reset may stay broken.
      await (tries === 1 ? app : appQueue(env, ref.app)).finish(ref.id, begun.delivery.attempt, result);
      return;
    } catch (error) {
      if (tries >= FINISH_TRIES) throw error;
      console.warn(`consumer: finish of ${ref.app}/${ref.id} failed (try ${tries}); retrying`, error);
      await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (tries - 1) * Math.random()));
    }
  }
}

export async function deliverNotification(ref: TaskMessage, kind: "callback" | "notify", env: Env): Promise<void> {
  const app = appQueue(env, ref.app);
  const begun = await app.beginNotification(ref.id, kind);
  if (!begun) return;
  const { delivered, detail } = await postNotification(begun);
  await app.finishNotification(ref.id, kind, begun.attempt, delivered, detail);
}
