/** Per-request facts shared by the submit and control handlers. */
import { randomHex } from "../shared/encoding";

/** `X-Reqid`: on every response, stored with the task a request submitted. */
export const newReqId = () => randomHex(8);
