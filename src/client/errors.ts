/** The one error type of the client: a SPEC §8 error answered by the gateway. */
export class AsyncgateError extends Error {
  override name = "AsyncgateError";
  readonly status: number;
  readonly code: string;
  readonly reqId: string | null;

  constructor(status: number, code: string, message: string, reqId: string | null) {
    super(message);
    this.status = status;
    this.code = code;
    this.reqId = reqId;
  }
}
