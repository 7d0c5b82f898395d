/** Wire types shared by the Worker, the Durable Objects and clients. */

/** Multi-value header map with canonical names: `{"Content-Type": ["application/json"]}`. */
export type HeaderMap = Record<string, string[]>;

/** The request a client submitted, exactly as it will be replayed to the origin. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** The raw query with its leading `?`, or "" when there was none. */
  raw_query: string;
  header: HeaderMap;
  body: Uint8Array;
}

export const TaskState = { Waiting: 0, Doing: 1, Success: 10, Failed: 11 } as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** Why a task failed without (or after) an origin response. */
export type TaskError = "timeout" | "network error" | "canceled" | "expired";

/** The Qiniu-shaped task record of SPEC §4. */
export interface TaskRecord {
  id: string;
  req_id: string;
  app: string;
  request: { method: string; path: string; raw_query: string; header: HeaderMap; body: string };
  /** Unix nanoseconds. */
  created_at: number;
  state: TaskState;
  response?: { status_code: number; header: HeaderMap; body: string };
  /** Unix nanoseconds of the last attempt's outcome. */
  exec_at?: number;
  attempts: number;
  error: TaskError | string | null;
  /** Unix seconds of the next scheduled attempt while waiting. */
  eta?: number;
  callback?: string;
}

/**
 * The queue message: references to tasks of one app, never their bodies. One message carries
 * up to TASKS_PER_MESSAGE tasks (`ids`; a single one as `id`): each message is three billed
 * queue operations (write, read, delete), whatever it carries.
 */
export interface TaskMessage {
  app: string;
  /** The task (the one task of a message, or a notification's). */
  id: string;
  /** Further tasks of the same app in this message. */
  more?: string[];
  /** Present when the message asks for a finished task's record to be POSTed, not for the task to run. */
  notify?: "callback" | "notify";
}

/** Tasks one queue message may carry. */
export const TASKS_PER_MESSAGE = 10;

/** Every task a message names. */
export const taskIdsOf = (message: TaskMessage): string[] =>
  message.more ? [message.id, ...message.more] : [message.id];

/** One POST of a finished task's record to a callback or the app's notify url. */
export interface NotificationDelivery {
  app: string;
  taskId: string;
  kind: "callback" | "notify";
  url: string;
  attempt: number;
  /** The task record of SPEC §4, as JSON. */
  body: string;
  /** The app's signing secret, and a rotated-out one while it still signs (see delivery/signature.ts). */
  signingSecrets: string[];
  /** How long the POST may take, ms: its lease in the app's object counts on it. */
  timeoutMs: number;
}

/** Everything the consumer needs to run one attempt, handed out by `AppQueue.begin`. */
export interface Delivery {
  app: string;
  taskId: string;
  /** 1 for the first attempt; also the attempt's identity in `finish`. */
  attempt: number;
  request: RecordedRequest;
  origin: string;
  timeoutMs: number;
  /** Scheduled time of this attempt, unix ms. */
  etaMs: number;
  /** Earlier attempts that got a response from the origin. */
  executions: number;
  previousStatus: number | null;
  retryReason: string | null;
  taskHeaders: "asyncgate" | "cloudtasks" | "appengine";
  /** The submission asked that its handler fail fast (App Engine's X-AppEngine-FailFast). */
  failFast: boolean;
  /** The app's signing secret, and a rotated-out one while it still signs (see delivery/signature.ts). */
  signingSecrets: string[];
}

export type BeginResult =
  | { run: true; delivery: Delivery }
  | {
      run: false;
      reason: "app_not_found" | "task_not_found" | "finished" | "running" | "not_due" | "paused" | "deferred";
    }
  /** Only from `beginMany`: this task's begin could not be stored (its neighbours' were); try it again. */
  | { run: false; reason: "error" };

/** What one attempt got from the origin. */
export type AttemptResult =
  | { kind: "response"; status: number; header: HeaderMap; body: Uint8Array }
  | { kind: "error"; error: "timeout" | "network error"; detail: string };

/**
 * An attempt the consumer gives back instead of a result: cut by the consumer's own deadline
 * before the origin answered, or begun by a `beginMany` whose answer was lost. The task waits
 * again with the attempt not counted (its number is handed out again). Keyed by `run`, the name
 * the consumer gave that begin, not by the attempt number alone: a duplicate or late put-back
 * finds its run gone and never gives back a later run of the same number.
 */
export interface PutBack {
  kind: "put_back";
  run: string;
  reason: "deadline" | "begin_lost";
}

export interface FinishResult {
  applied: boolean;
  state: TaskState | null;
}

/** A notification (a task's callback or the app's notify POST) as the batched calls name it. */
export interface NotificationRef {
  taskId: string;
  kind: "callback" | "notify";
}

/** How one notification attempt ended, as `finishNotifications` takes it. */
export interface NotificationReport extends NotificationRef {
  attempt: number;
  delivered: boolean;
  detail: string;
}

/** One attempt's result as `finishMany` takes it. */
export interface AttemptReport {
  taskId: string;
  /** For a put-back, the attempt begun if known (0 when its begin's answer was lost): the run decides. */
  attempt: number;
  result: AttemptResult | PutBack;
}
