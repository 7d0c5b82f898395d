/** HMAC with Web Crypto, imported keys cached by secret: importing costs about as much as signing. */
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

type Hash = "SHA-1" | "SHA-256";

function hmacKey(hash: Hash, cacheKey: string, keyBytes: () => Uint8Array): Promise<CryptoKey> {
  const cached = `${hash}:${cacheKey}`;
  let key = keys.get(cached);
  if (!key) {
    if (keys.size > 1000) keys.clear();
    // DOM's lib (the console's build) types Web Crypto's input as ArrayBuffer-backed, which ours always is.
    key = crypto.subtle.importKey("raw", keyBytes() as Uint8Array<ArrayBuffer>, { name: "HMAC", hash }, false, [
      "sign",
    ]);
    keys.set(cached, key);
  }
  return key;
}

/**
 * HMAC of `data` under a key made from bytes, cached by `cacheKey`: a name the key's bytes are
 * always derived from the same way (so two ways of reading one secret need two names).
 */
export async function hmacWithKey(
  hash: Hash,
  cacheKey: string,
  keyBytes: () => Uint8Array,
  data: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", await hmacKey(hash, cacheKey, keyBytes), data as Uint8Array<ArrayBuffer>),
  );
}

/** HMAC of `data` under `secret` as UTF-8 (the access-key schemes and `Asyncgate-Signature`). */
export function hmac(hash: Hash, secret: string, data: Uint8Array): Promise<Uint8Array> {
  return hmacWithKey(hash, `utf8:${secret}`, () => encoder.encode(secret), data);
}
