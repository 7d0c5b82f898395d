/** HMAC with Web Crypto, imported keys cached by secret: importing costs about as much as signing. */
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(hash: "SHA-1" | "SHA-256", secret: string): Promise<CryptoKey> {
  const cacheKey = `${hash}:${secret}`;
  let key = keys.get(cacheKey);
  if (!key) {
    if (keys.size > 1000) keys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash }, false, ["sign"]);
    keys.set(cacheKey, key);
  }
  return key;
}

export async function hmac(hash: "SHA-1" | "SHA-256", secret: string, data: Uint8Array): Promise<Uint8Array> {
  // DOM's lib (the console's build) types Web Crypto's input as ArrayBuffer-backed, which ours always is.
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(hash, secret), data as Uint8Array<ArrayBuffer>));
}
