/**
 * AppRegistry: the one small Durable Object that indexes apps. It hands out each
 * app's number (the routing key inside task ids, never reused), resolves numbers
 * back to names, and keeps a copy of each config for listing. Each app's own
 * AppQueue object stays the truth for its config.
 */
import { DurableObject } from "cloudflare:workers";
import type { AppConfig, AppState } from "../app/config";
import { fail, ok, type Outcome } from "../http/errors";

export interface AppListQuery {
  names: string[] | null;
  state: AppState | null;
  page: number;
  pageSize: number;
}

export interface AppListPage {
  total: number;
  apps: AppConfig[];
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
  }

  /** Reserves `config.name` and returns its number; 409 when the name is taken. */
  async register(config: AppConfig): Promise<Outcome<number>> {
    const taken = this.#sql.exec("SELECT 1 FROM apps WHERE name = ?", config.name).toArray().length > 0;
    if (taken) return fail(409, "app_exists", `app ${config.name} already exists`);
    const row = this.#sql
      .exec<{ number: number }>(
        "INSERT INTO apps (name, state, config) VALUES (?, ?, ?) RETURNING number",
        config.name,
        config.state,
        JSON.stringify(config),
      )
      .one();
    return ok(row.number);
  }

  async update(config: AppConfig): Promise<void> {
    this.#sql.exec("UPDATE apps SET state = ?, config = ? WHERE name = ?", config.state, JSON.stringify(config), config.name);
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
      .exec<{ config: string }>(
        `SELECT config FROM apps ${where} ORDER BY name LIMIT ? OFFSET ?`,
        ...params,
        query.pageSize,
        (query.page - 1) * query.pageSize,
      )
      .toArray();
    return { total, apps: rows.map((row) => JSON.parse(row.config) as AppConfig) };
  }
}
