/**
 * AppRegistry: the one small Durable Object that indexes apps. It hands out each
 * app's number (the routing key inside task ids, never reused), resolves numbers
 * back to names, and keeps a copy of each config for listing. Each app's own
 * AppQueue object stays the truth for its config.
 */
import { DurableObject } from "cloudflare:workers";
import { normalizeConfig, type AppConfig, type AppState } from "../config/app-config";
import { fail, ok, type Outcome } from "../http/errors";
import { meterRequests } from "../shared/meters";

export interface AppListQuery {
  names: string[] | null;
  state: AppState | null;
  page: number;
  pageSize: number;
}

/** An app as the registry lists it: its config and when the entry was created and last changed. */
export interface RegisteredApp {
  config: AppConfig;
  createdMs: number;
  updatedMs: number;
}

export interface AppListPage {
  total: number;
  apps: RegisteredApp[];
  /** With `names`: those that name an app, whatever its state or page. */
  found?: string[];
}

export class AppRegistry extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    // AUTOINCREMENT: a deleted app's number is never handed out again, so an old
    // task id can never reach a new app of the same name.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS apps (
      number INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL,
      config TEXT NOT NULL
    )`);
    // Entries registered before the times were kept show 0 (unknown) until their next update.
    try {
      this.#sql.exec("SELECT created_ms FROM apps LIMIT 0");
    } catch {
      this.#sql.exec("ALTER TABLE apps ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0");
      this.#sql.exec("ALTER TABLE apps ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0");
    }
  }

  /** Reserves `config.name` and returns its number; 409 when the name is taken. */
  async register(config: AppConfig): Promise<Outcome<number>> {
    const taken = this.#sql.exec("SELECT 1 FROM apps WHERE name = ?", config.name).toArray().length > 0;
    if (taken) return fail(409, "app_exists", `app ${config.name} already exists`);
    const row = this.#sql
      .exec<{ number: number }>(
        "INSERT INTO apps (name, state, config, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?) RETURNING number",
        config.name,
        config.state,
        JSON.stringify(config),
        Date.now(),
        Date.now(),
      )
      .one();
    return ok(row.number);
  }

  /** Keeps the listing's copy of `config`; answers the entry as now listed (null when no app has the name). */
  async update(config: AppConfig): Promise<RegisteredApp | null> {
    const row = this.#sql
      .exec<{ created_ms: number; updated_ms: number }>(
        "UPDATE apps SET state = ?, config = ?, updated_ms = ? WHERE name = ? RETURNING created_ms, updated_ms",
        config.state,
        JSON.stringify(config),
        Date.now(),
        config.name,
      )
      .toArray()[0];
    return row ? { config, createdMs: row.created_ms, updatedMs: row.updated_ms } : null;
  }

  /**
   * Lists `config` under `number` again where a create that lost a race for the name took the
   * entry away (the winner's object holds the truth), and lets the loser's number go.
   */
  async restore(config: AppConfig, number: number, losing: number): Promise<void> {
    this.#sql.exec("DELETE FROM apps WHERE name = ? AND number = ?", config.name, losing);
    this.#sql.exec(
      `INSERT INTO apps (number, name, state, config, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
      number,
      config.name,
      config.state,
      JSON.stringify(config),
      Date.now(),
      Date.now(),
    );
  }

  /** Lets `name` go; with `number`, only if the name still holds that number (not a newer registration). */
  async remove(name: string, number?: number): Promise<boolean> {
    if (number === undefined) return this.#sql.exec("DELETE FROM apps WHERE name = ?", name).rowsWritten > 0;
    return this.#sql.exec("DELETE FROM apps WHERE name = ? AND number = ?", name, number).rowsWritten > 0;
  }

  async nameOf(number: number): Promise<string | null> {
    const row = this.#sql.exec<{ name: string }>("SELECT name FROM apps WHERE number = ?", number).toArray()[0];
    return row ? row.name : null;
  }

  async list(query: AppListQuery): Promise<AppListPage> {
    const conditions: string[] = [];
    const params: SqlStorageValue[] = [];
    if (query.names) {
      // One bound parameter whatever the list's length: SQLite in Durable Objects takes at most 100.
      conditions.push("name IN (SELECT value FROM json_each(?))");
      params.push(JSON.stringify(query.names));
    }
    if (query.state) {
      conditions.push("state = ?");
      params.push(query.state);
    }
    const where = conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
    const total = this.#sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM apps ${where}`, ...params).one().n;
    const rows = this.#sql
      .exec<{ config: string; created_ms: number; updated_ms: number }>(
        `SELECT config, created_ms, updated_ms FROM apps ${where} ORDER BY name LIMIT ? OFFSET ?`,
        ...params,
        query.pageSize,
        (query.page - 1) * query.pageSize,
      )
      .toArray();
    const apps = rows.map((row) => ({
      config: normalizeConfig(JSON.parse(row.config) as AppConfig),
      createdMs: row.created_ms,
      updatedMs: row.updated_ms,
    }));
    if (!query.names) return { total, apps };
    const found = this.#sql
      .exec<{ name: string }>(
        "SELECT name FROM apps WHERE name IN (SELECT value FROM json_each(?))",
        JSON.stringify(query.names),
      )
      .toArray()
      .map((row) => row.name);
    return { total, apps, found };
  }
}

meterRequests(AppRegistry);
