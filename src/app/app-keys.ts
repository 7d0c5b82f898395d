/**
 * The app's access keys, in its object's SQLite. Secrets are stored sealed (auth/key-vault)
 * and opened once per object lifetime into memory; revoking a key drops it from both at
 * once, so the very next request with it fails. Its table is created with the store's
 * (store/schema.ts).
 */
import { MAX_KEYS_PER_APP, newAccessKey, newSecretKey, type Permission } from "../auth/access-keys";
import type { KeyPrincipal } from "../auth/authenticate";
import { verifyProof, type Proof } from "../auth/credentials";
import { openSecret, sealSecret } from "../auth/key-vault";
import { fail, ok, type Outcome } from "../http/errors";
import { log } from "../shared/log";

/** A key as stored: its secret sealed under the gateway's key secret. */
export interface SealedKey extends Record<string, SqlStorageValue> {
  access_key: string;
  sealed_secret: ArrayBuffer;
  permissions: string;
  created_ms: number;
}

/** A key as listed: never its secret. */
export interface KeyView {
  access_key: string;
  permissions: Permission[];
  /** Unix seconds. */
  created_at: number;
}

/** A key as created: the only time its secret is shown. */
export interface CreatedKey extends KeyView {
  secret_key: string;
}

export class AppKeys {
  readonly #sql: SqlStorage;
  readonly #master: string | null;
  /** Opened secrets by access key; a revoked key leaves at once. */
  readonly #open = new Map<string, { secretKey: string; permissions: Permission[] }>();

  constructor(sql: SqlStorage, master: string | null) {
    this.#sql = sql;
    this.#master = master;
  }

  async create(app: string, permissions: Permission[], nowMs: number): Promise<Outcome<CreatedKey>> {
    if (!this.#master)
      return fail(
        503,
        "keys_not_configured",
        "set the KEY_ENCRYPTION_SECRET (or ADMIN_SECRET_KEY) secret to create keys",
      );
    const count = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM access_keys").one().n;
    if (count >= MAX_KEYS_PER_APP)
      return fail(409, "too_many_keys", `an app holds at most ${MAX_KEYS_PER_APP} keys; revoke one first`);
    const accessKey = await newAccessKey(app, this.#master);
    const secretKey = newSecretKey();
    const sealed = await sealSecret(this.#master, accessKey, secretKey);
    this.#sql.exec(
      "INSERT INTO access_keys (access_key, sealed_secret, permissions, created_ms) VALUES (?, ?, ?, ?)",
      accessKey,
      sealed,
      permissions.join(","),
      nowMs,
    );
    return ok({ access_key: accessKey, secret_key: secretKey, permissions, created_at: Math.floor(nowMs / 1000) });
  }

  list(): KeyView[] {
    return this.#sql
      .exec<SealedKey>("SELECT access_key, permissions, created_ms FROM access_keys ORDER BY created_ms, access_key")
      .toArray()
      .map((row) => ({
        access_key: row.access_key,
        permissions: row.permissions.split(",") as Permission[],
        created_at: Math.floor(row.created_ms / 1000),
      }));
  }

  /** Every key as stored (secrets sealed): what a shard object copies (shards/shard-sync.ts). */
  sealed(): SealedKey[] {
    return this.#sql
      .exec<SealedKey>("SELECT access_key, sealed_secret, permissions, created_ms FROM access_keys")
      .toArray()
      .map((row) => ({ ...row }));
  }

  /** Makes the keys exactly `keys` (a shard's copy of its app's): a key gone from them fails at once. */
  replaceAll(keys: SealedKey[]): void {
    this.#open.clear();
    this.#sql.exec("DELETE FROM access_keys");
    for (const key of keys) {
      this.#sql.exec(
        "INSERT INTO access_keys (access_key, sealed_secret, permissions, created_ms) VALUES (?, ?, ?, ?)",
        key.access_key,
        key.sealed_secret,
        key.permissions,
        key.created_ms,
      );
    }
  }

  revoke(accessKey: string): boolean {
    this.#open.delete(accessKey);
    return this.#sql.exec("DELETE FROM access_keys WHERE access_key = ?", accessKey).rowsWritten > 0;
  }

  /** The key's principal when `proof` was made with its secret; null for unknown keys and bad signatures. */
  async verify(app: string, proof: Proof, body: Uint8Array): Promise<KeyPrincipal | null> {
    const key = await this.#secretOf(proof.accessKey);
    if (!key || !(await verifyProof(proof, key.secretKey, body))) return null;
    // Awaiting crypto lets other requests in: a key revoked meanwhile no longer counts.
    if (!this.#open.has(proof.accessKey)) return null;
    return { kind: "key", app, accessKey: proof.accessKey, permissions: key.permissions };
  }

  async #secretOf(accessKey: string): Promise<{ secretKey: string; permissions: Permission[] } | null> {
    const cached = this.#open.get(accessKey);
    if (cached) return cached;
    const row = this.#sql.exec<SealedKey>("SELECT * FROM access_keys WHERE access_key = ?", accessKey).toArray()[0];
    if (!row || !this.#master) return null;
    const secretKey = await openSecret(this.#master, accessKey, row.sealed_secret);
    if (secretKey === null) {
      log("error", "key_secret_unsealable", { access_key: accessKey, hint: "was KEY_ENCRYPTION_SECRET changed?" });
      return null;
    }
    // Still there after the await? (revoked keys never come back into memory)
    if (this.#sql.exec("SELECT 1 FROM access_keys WHERE access_key = ?", accessKey).toArray().length === 0) return null;
    const opened = { secretKey, permissions: row.permissions.split(",") as Permission[] };
    this.#open.set(accessKey, opened);
    return opened;
  }
}
