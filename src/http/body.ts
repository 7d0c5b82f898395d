/** Reading a request body with a hard size limit, without buffering past it. */
import { GatewayError } from "./errors";
import { concatBytes } from "../shared/encoding";

export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new GatewayError(413, "body_too_large", `request body exceeds ${limit} bytes`);
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : concatBytes(...chunks);
}

/** Parses a JSON body; 400 when it is not JSON. */
export function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new GatewayError(400, "invalid_json", "request body is not valid JSON");
  }
}
