/** Per-request facts shared by the submit and control handlers. */
import { randomHex } from "../shared/encoding";
import type { ConfigRules } from "../app/config";

/** `X-Reqid`: on every response, stored with the task a request submitted. */
export const newReqId = () => randomHex(8);

export const configRules = (env: Env): ConfigRules => ({ allowPrivateOrigins: env.ALLOW_PRIVATE_ORIGINS === "true" });
