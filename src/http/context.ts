/** Per-request facts shared by the submit and control handlers. */
import { randomHex } from "../shared/encoding";
import type { ConfigRules } from "../app/config";

/** `X-Reqid`: on every response, stored with the task a request submitted. */
export const newReqId = () => randomHex(8);

/** How app configs and callback URLs are checked, given the host the request came to. */
export const configRules = (env: Env, requestHost: string): ConfigRules => ({
  allowPrivateOrigins: env.ALLOW_PRIVATE_ORIGINS === "true",
  gateway: { appHostSuffix: env.APP_HOST_SUFFIX, controlHosts: [env.CONTROL_HOST, requestHost] },
});
