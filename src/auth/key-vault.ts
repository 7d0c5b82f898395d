/**
 * Secret keys at rest. An app's object must know each key's secret to verify Qiniu
 * signatures (HMAC keyed by the secret), so secrets cannot be stored as hashes; they are
 * stored encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from a wrangler
 * secret, with the access key as associated data. A dump of the object's storage alone
 * reveals no secret key, and a ciphertext moved to another key's row does not decrypt.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Derived keys by master secret: derivation costs about as much as one decryption. */
const derived = new Map<string, Promise<CryptoKey>>();

/** The master secret: KEY_ENCRYPTION_SECRET, or (when it is unset) the admin secret key. */
export function masterSecret(env: { KEY_ENCRYPTION_SECRET?: string; ADMIN_SECRET_KEY?: string }): string | null {
  return env.KEY_ENCRYPTION_SECRET || env.ADMIN_SECRET_KEY || null;
}

function encryptionKey(master: string): Promise<CryptoKey> {
  let key = derived.get(master);
  if (!key) {
    key = (async () => {
      const material = await crypto.subtle.importKey("raw", encoder.encode(master), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        {
          name: "HKDF",
          hash: "SHA-256",
          salt: encoder.encode("asyncgate"),
          info: encoder.encode("access key secrets v1"),
        },
        material,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
    derived.set(master, key);
  }
  return key;
}

/** `iv (12 bytes) || ciphertext+tag`. */
export async function sealSecret(master: string, accessKey: string, secretKey: string): Promise<ArrayBuffer> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: encoder.encode(accessKey) },
      await encryptionKey(master),
      encoder.encode(secretKey),
    ),
  );
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return out.buffer;
}

/** The secret key, or null when the ciphertext does not open under this master secret. */
export async function openSecret(master: string, accessKey: string, sealed: ArrayBuffer): Promise<string | null> {
  const bytes = new Uint8Array(sealed);
  if (bytes.length < 12 + 16) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.subarray(0, 12), additionalData: encoder.encode(accessKey) },
      await encryptionKey(master),
      bytes.subarray(12),
    );
    return decoder.decode(plain);
  } catch {
    return null;
  }
}
