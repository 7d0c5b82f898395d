/** Every app the keys can see: state, counts, oldest waiting, success rate, latency; create, pause, resume, delete. */
import type { App } from "../../client/index";
import { field, h, replace } from "../dom";
import { age, ms } from "../format";
import type { Page } from "../page";

interface AppStats {
  counts: Record<string, number>;
  oldest_waiting_age: number | null;
  last_hour: { attempts: number; successes: number };
  latency_ms: { submit_to_finish: { count: number; p50: number | null; p99: number | null } };
}

const PAGE_SIZE = 50;
const REFRESH_MS = 5000;

export function renderApps(view: HTMLElement, page: Page): void {
  page.crumbs(["Apps"]);
  document.title = "Apps · asyncgate";
  const rows = h("tbody", {});
  const total = h("span", { class: "muted" });
  const pager = h("div", { class: "actions" });
  let pageNumber = 1;

  const load = page.guard(async () => {
    const list = await page.client.apps.list({ page: pageNumber, pageSize: PAGE_SIZE });
    total.textContent = `${list.total} app${list.total === 1 ? "" : "s"}`;
    const stats = await Promise.all(
      list.apps.map((app) =>
        page.client.apps.stats(app.name).then(
          (value) => value as unknown as AppStats,
          () => null,
        ),
      ),
    );
    replace(
      rows,
      list.apps.length
        ? list.apps.map((app, i) => appRow(app, stats[i] ?? null))
        : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No apps yet: create one below.")),
    );
    const pages = Math.max(1, Math.ceil(list.total / PAGE_SIZE));
    replace(
      pager,
      pages > 1 && [
        h(
          "button",
          { type: "button", disabled: pageNumber <= 1, onclick: () => ((pageNumber -= 1), void load()) },
          "Previous",
        ),
        h("span", {}, `page ${pageNumber} of ${pages}`),
        h(
          "button",
          { type: "button", disabled: pageNumber >= pages, onclick: () => ((pageNumber += 1), void load()) },
          "Next",
        ),
      ],
    );
  });

  const act = (label: string, run: () => Promise<unknown>) =>
    page.guard(async () => {
      await run();
      page.notify(label);
      await load();
    });

  const appRow = (app: App, stats: AppStats | null) => {
    const counts = stats?.counts ?? {};
    const hour = stats?.last_hour;
    const latency = stats?.latency_ms.submit_to_finish;
    return h(
      "tr",
      { "data-app": app.name },
      h("td", {}, h("a", { href: `#/apps/${encodeURIComponent(app.name)}` }, app.name)),
      h("td", {}, h("span", { class: `badge ${app.state}` }, app.state)),
      ["waiting", "doing", "success", "failed"].map((state) =>
        h(
          "td",
          { class: `num ${state === "doing" || state === "success" ? "hide-narrow" : ""}` },
          counts[state] ?? "—",
        ),
      ),
      h("td", { class: "num hide-narrow" }, age(stats?.oldest_waiting_age)),
      h(
        "td",
        { class: "num hide-narrow" },
        hour && hour.attempts > 0 ? `${((100 * hour.successes) / hour.attempts).toFixed(1)} %` : "—",
      ),
      h("td", { class: "num hide-narrow" }, latency?.count ? `${ms(latency.p50)} / ${ms(latency.p99)}` : "—"),
      h(
        "td",
        {},
        h(
          "div",
          { class: "actions" },
          app.state === "Active"
            ? h(
                "button",
                {
                  type: "button",
                  "aria-label": `Pause ${app.name}`,
                  onclick: act(`${app.name} paused`, () => page.client.apps.pause(app.name)),
                },
                "Pause",
              )
            : h(
                "button",
                {
                  type: "button",
                  "aria-label": `Resume ${app.name}`,
                  onclick: act(`${app.name} resumed`, () => page.client.apps.resume(app.name)),
                },
                "Resume",
              ),
          h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Delete ${app.name}`,
              onclick: () => {
                if (confirm(`Delete ${app.name} and all its tasks? This cannot be undone.`))
                  void act(`${app.name} deleted`, () => page.client.apps.delete(app.name))();
              },
            },
            "Delete",
          ),
        ),
      ),
    );
  };

  const secret = h("div", {});
  const name = h("input", {
    name: "name",
    required: true,
    pattern: "[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?",
    title: "lowercase letters, digits and hyphens",
    spellcheck: "false",
    placeholder: "shop",
  });
  const origin = h("input", {
    name: "origin",
    type: "url",
    required: true,
    placeholder: "https://backend.example.com",
  });
  const attempts = h("input", { name: "max_attempts", type: "number", min: 1, max: 100, value: 5 });
  const timeout = h("input", { name: "timeout", type: "number", min: 1, max: 900, value: 60 });
  const create = h(
    "form",
    {
      class: "grid",
      "aria-label": "Create an app",
      onsubmit: (event) => {
        event.preventDefault();
        void page.guard(async () => {
          const created = await page.client.apps.create({
            name: name.value,
            origin: origin.value,
            timeout: Number(timeout.value),
            retry: { max_attempts: Number(attempts.value) },
          });
          replace(
            secret,
            h(
              "div",
              { class: "card secret", role: "alert" },
              h("strong", {}, `${created.name} created. `),
              "Its signing secret is shown this once; your origin verifies deliveries with it: ",
              h("code", { class: "id" }, created.signing_secret),
            ),
          );
          create.reset();
          await load();
        })();
      },
    },
    field("Name", name),
    field("Origin", origin),
    field("Max attempts", attempts),
    field("Timeout per attempt (s)", timeout),
    h("div", {}, h("button", { class: "primary", type: "submit" }, "Create app")),
  );

  replace(
    view,
    h("h1", {}, "Apps ", total),
    h(
      "div",
      { class: "card scroll" },
      h(
        "table",
        { "aria-label": "Apps" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "App"),
            h("th", { scope: "col" }, "State"),
            h("th", { scope: "col", class: "num" }, "Waiting"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Doing"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Success"),
            h("th", { scope: "col", class: "num" }, "Failed"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Oldest waiting"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Success, last hour"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Latency p50 / p99"),
            h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")),
          ),
        ),
        rows,
      ),
      pager,
    ),
    secret,
    h(
      "section",
      { class: "card", "aria-labelledby": "create-heading" },
      h("h2", { id: "create-heading" }, "Create an app"),
      create,
    ),
  );
  void load();
  const timer = setInterval(() => document.visibilityState === "visible" && void load(), REFRESH_MS);
  page.onLeave(() => clearInterval(timer));
}
