/**
 * The dead-letter queue's consumer. A message lands there when the task consumer failed on it
 * `max_retries` times (its app's object unreachable or failing, not its origin: origin failures
 * are attempts, retried by the object's policy). Each is handed back to its app's object, which
 * sends it again from its outbox if the task still waits (or reschedules the notification), and
 * logged; nothing accepted is lost to a run of bad luck.
 */
import { isTaskMessage } from "./consumer";
import { log } from "../shared/log";
import { meters } from "../shared/meters";
import { appQueue } from "../app/stubs";
import { storeNameOf } from "../shards/routing";
import { taskIdsOf } from "../shared/types";

/** Queue names ending so are dead-letter queues (`asyncgate-tasks-dlq`, `asyncgate-tasks-staging-dlq`). */
export const DEAD_LETTER_SUFFIX = "-dlq";

export const isDeadLetterQueue = (queue: string) => queue.endsWith(DEAD_LETTER_SUFFIX);

export async function reconcileDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  meters.queue_reads += batch.messages.length;
  for (const message of batch.messages) {
    if (!isTaskMessage(message.body)) {
      log("error", "malformed_message", { message: message.id, queue: batch.queue });
      message.ack();
      continue;
    }
    const { app, notify } = message.body;
    try {
      // Each task of the message on its own (a notification message names one task).
      for (const id of notify ? [message.body.id] : taskIdsOf(message.body)) {
        const action = await appQueue(env, storeNameOf(app, id)).reconcile(notify ? { app, id, notify } : { app, id });
        log("warn", "dead_letter", { app, task: id, kind: notify ?? "task", action });
      }
      message.ack();
      meters.queue_acks++;
    } catch (error) {
      log("error", "dead_letter_retried", { app, task: message.body.id }, error);
      message.retry({ delaySeconds: Math.min(300, 10 * 2 ** message.attempts) });
    }
  }
}
