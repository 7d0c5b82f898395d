/**
 * One app: its settings (edit, pause, resume, redrive, delete), a live strip of results with a
 * latency sparkline, and its tasks (filter by state and time, cursor paging) updated from the feed.
 */
import type { AppDetails, ListTasksOptions, TaskRecord, TaskResult } from "../../client/index";
import { field, h, kv, replace, svg } from "../dom";
import { STATE_NAMES, age, latencyMs, ms, nanosTime, stateBadge } from "../format";
import type { Page } from "../page";

const PAGE_SIZE = 50;
const STRIP_LENGTH = 60;
const REFRESH_MS = 5000;

interface Filter {
  state: number | undefined;
  createdAfter: number | undefined;
  createdBefore: number | undefined;
}

export function renderApp(view: HTMLElement, page: Page, name: string): void {
  page.crumbs(["Apps", "#/apps"], [name]);
  document.title = `${name} · asyncgate`;
  const stop = new AbortController();
  page.onLeave(() => stop.abort());

  const heading = h("h1", {}, name);
  const summary = h("dl", { class: "kv" });
  const actions = h("div", { class: "actions" });
  const editCard = h("section", { class: "card", "aria-labelledby": "edit-heading" });
  const counts = h("dl", { class: "counts" });
  const feedState = h("span", { class: "muted", "data-feed": "connecting" }, "live feed: connecting…");
  const chips = h("div", { class: "results", "aria-label": "Latest results, newest last" });
  const sparkline = svg("svg", {
    class: "sparkline",
    viewBox: "0 0 220 36",
    role: "img",
    "aria-label": "Latency of the latest results",
  });
  const sparkLabel = h("span", { class: "muted" });
  const rows = h("tbody", {});
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const results: TaskResult[] = [];
  /** Results seen on the feed by task id: newer than a listing read before they came. */
  const finished = new Map<string, TaskResult>();
  /** Retries and cancels awaiting their answer, by task id; superseded once the feed tells of the task. */
  const pendingActions = new Map<string, { superseded: boolean }>();
  let filter: Filter = { state: undefined, createdAfter: undefined, createdBefore: undefined };
  let cursorPages: AsyncIterator<TaskRecord> | null = null;

  // ---- the app's settings and state ---------------------------------------------------
  const loadApp = async () => {
    if (page.keys.readOnlyApp) {
      // A key without `manage` reads tasks and the feed; settings and actions are not its.
      replace(heading, name, " ", h("span", { class: "badge" }, "read-only"));
      return;
    }
    const app = await page.client.apps.get(name);
    replace(heading, name, " ", h("span", { class: `badge ${app.state}` }, app.state));
    replace(
      summary,
      kv("Host", h("span", { class: "mono" }, app.host)),
      kv("Origin", h("span", { class: "mono" }, app.origin)),
      kv("Attempt timeout", `${app.timeout} s`),
      kv(
        "Retry",
        `${app.retry.max_attempts === -1 ? "unlimited" : app.retry.max_attempts} attempts, backoff ${app.retry.min_backoff}–${app.retry.max_backoff} s`,
      ),
      kv("Notify", app.notify.state === "On" && app.notify.url ? h("span", { class: "mono" }, app.notify.url) : "off"),
      kv("Retention", age(app.retention)),
    );
    replace(
      actions,
      app.state === "Active"
        ? h(
            "button",
            {
              type: "button",
              onclick: page.guard(
                async () => (await page.client.apps.pause(name), page.notify(`${name} paused`), await loadApp()),
              ),
            },
            "Pause",
          )
        : h(
            "button",
            {
              type: "button",
              onclick: page.guard(
                async () => (await page.client.apps.resume(name), page.notify(`${name} resumed`), await loadApp()),
              ),
            },
            "Resume",
          ),
      h("button", { type: "button", onclick: page.guard(redrive) }, "Redrive failed…"),
      h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: page.guard(async () => {
            if (!confirm(`Delete ${name} and all its tasks? This cannot be undone.`)) return;
            await page.client.apps.delete(name);
            page.notify(`${name} deleted`);
            location.hash = "#/apps";
          }),
        },
        "Delete app",
      ),
    );
    renderEdit(app);
  };

  const redrive = async () => {
    const path = `/v1/apps/${encodeURIComponent(name)}/redrive`;
    const { matched } = (await page.client.request("POST", path, { state: 11, dry_run: true })) as { matched: number };
    if (matched === 0) return page.notify("No failed tasks to redrive");
    if (!confirm(`Retry ${matched} failed task${matched === 1 ? "" : "s"} of ${name} with a fresh attempt budget?`))
      return;
    const { retried, remaining } = (await page.client.request("POST", path, { state: 11 })) as {
      retried: number;
      remaining?: number;
    };
    page.notify(
      `${retried} task${retried === 1 ? "" : "s"} redriven${remaining ? `, ${remaining} left (run it again)` : ""}`,
    );
    await loadTasks();
  };

  const renderEdit = (app: AppDetails) => {
    const origin = h("input", { name: "origin", type: "url", required: true, value: app.origin });
    const timeout = h("input", { name: "timeout", type: "number", min: 1, max: 900, value: app.timeout });
    const attempts = h("input", {
      name: "max_attempts",
      type: "number",
      min: -1,
      max: 1000,
      value: app.retry.max_attempts,
    });
    const minBackoff = h("input", { name: "min_backoff", type: "number", min: 0, value: app.retry.min_backoff });
    const maxBackoff = h("input", { name: "max_backoff", type: "number", min: 0, value: app.retry.max_backoff });
    const notifyUrl = h("input", {
      name: "notify_url",
      type: "url",
      value: app.notify.url ?? "",
      placeholder: "https://… (empty: off)",
    });
    replace(
      editCard,
      h("h2", { id: "edit-heading" }, "Settings"),
      h(
        "form",
        {
          class: "grid",
          "aria-label": "Edit app",
          onsubmit: (event) => {
            event.preventDefault();
            void page.guard(async () => {
              const url = notifyUrl.value.trim();
              await page.client.apps.update(name, {
                origin: origin.value,
                timeout: Number(timeout.value),
                retry: {
                  max_attempts: Number(attempts.value),
                  min_backoff: Number(minBackoff.value),
                  max_backoff: Number(maxBackoff.value),
                },
                notify: url ? { url, state: "On" } : { state: "Off" },
              });
              page.notify(`${name} saved`);
              await loadApp();
            })();
          },
        },
        field("Origin", origin),
        field("Attempt timeout (s)", timeout),
        field("Max attempts (-1: unlimited)", attempts),
        field("Min backoff (s)", minBackoff),
        field("Max backoff (s)", maxBackoff),
        field("Notify URL", notifyUrl),
        h("div", {}, h("button", { class: "primary", type: "submit" }, "Save")),
      ),
    );
  };

  const loadCounts = async () => {
    if (page.keys.readOnlyApp) return; // the app's stats are `manage`'s
    const stats = (await page.client.apps.stats(name)) as {
      counts: Record<string, number>;
      oldest_waiting_age: number | null;
      in_flight?: number;
    };
    const box = (label: string, value: string | number, attributes = {}) =>
      h("div", {}, h("dt", {}, label), h("dd", attributes, value));
    replace(
      counts,
      ["waiting", "doing", "success", "failed"].map((state) =>
        box(state, stats.counts[state] ?? 0, { "data-count": state }),
      ),
      box("oldest waiting", age(stats.oldest_waiting_age)),
    );
  };
  /** Counts follow the feed: read again shortly after results arrive (once per burst). */
  let countsDue: ReturnType<typeof setTimeout> | undefined;
  const countsSoon = () =>
    (countsDue ??= setTimeout(() => ((countsDue = undefined), void loadCounts().catch(() => undefined)), 500));
  page.onLeave(() => clearTimeout(countsDue));

  // ---- tasks ---------------------------------------------------------------------------
  const matches = (task: TaskRecord) =>
    (filter.state === undefined || filter.state === task.state) &&
    (filter.createdBefore === undefined || task.created_at / 1e9 < filter.createdBefore) &&
    (filter.createdAfter === undefined || task.created_at / 1e9 >= filter.createdAfter);

  const taskRow = (task: TaskRecord) =>
    h(
      "tr",
      { "data-task-id": task.id, "data-state": task.state },
      h("td", {}, h("a", { class: "id", href: `#/tasks/${task.id}` }, task.id)),
      h("td", {}, stateBadge(task.state)),
      h("td", { class: "mono" }, `${task.request.method} ${task.request.path}${task.request.raw_query}`),
      h("td", { class: "hide-narrow" }, nanosTime(task.created_at)),
      h("td", { class: "num" }, task.attempts),
      h("td", { class: "num" }, task.response?.status_code ?? ""),
      h("td", { class: "error" }, task.error ?? ""),
      h(
        "td",
        {},
        task.state === 11 &&
          h(
            "button",
            { type: "button", "aria-label": `Retry ${task.id}`, onclick: page.guard(() => retryTask(task.id)) },
            "Retry",
          ),
        task.state === 0 &&
          h(
            "button",
            { type: "button", "aria-label": `Cancel ${task.id}`, onclick: page.guard(() => cancelTask(task.id)) },
            "Cancel",
          ),
      ),
    );

  /** Shows `task` where its row is, or on top when new and within the filter. */
  const upsert = (task: TaskRecord) => {
    const existing = rows.querySelector(`tr[data-task-id="${task.id}"]`);
    const row = taskRow(task);
    row.classList.add("flash");
    if (existing) existing.replaceWith(row);
    else if (matches(task)) {
      rows.querySelector("tr[data-empty]")?.remove();
      rows.prepend(row);
    }
  };

  /**
   * Shows what an action answered, unless the feed told of the task since the action began: a
   * retried task can finish, and its result arrive on the feed, before the retry's own answer.
   */
  const afterAction = async (id: string, run: () => Promise<TaskRecord>) => {
    const action = { superseded: false };
    pendingActions.set(id, action);
    try {
      const record = await run();
      if (!action.superseded) upsert(record);
    } finally {
      if (pendingActions.get(id) === action) pendingActions.delete(id);
    }
  };
  const retryTask = async (id: string) => {
    await afterAction(id, () => page.client.retry(id));
    page.notify(`Task ${id} queued again`);
  };
  const cancelTask = async (id: string) => {
    await afterAction(id, () => page.client.cancel(id));
    page.notify(`Task ${id} canceled`);
  };

  const loadPage = async () => {
    if (!cursorPages) return;
    const shown: TaskRecord[] = [];
    for (let i = 0; i < PAGE_SIZE; i++) {
      const next = await cursorPages.next();
      if (next.done) {
        cursorPages = null;
        break;
      }
      shown.push(next.value);
    }
    for (const task of shown) {
      if (!rows.querySelector(`tr[data-task-id="${task.id}"]`)) rows.append(taskRow(finished.get(task.id) ?? task));
    }
    if (!rows.firstChild)
      rows.append(h("tr", { "data-empty": true }, h("td", { colspan: 8, class: "muted" }, "No tasks match.")));
    more.hidden = cursorPages === null;
  };

  const loadTasks = async () => {
    const options: ListTasksOptions = { pageSize: PAGE_SIZE, signal: stop.signal, ...filter };
    cursorPages = page.client.listTasks(name, options);
    replace(rows);
    await loadPage();
  };
  more.addEventListener("click", page.guard(loadPage));

  const stateSelect = h(
    "select",
    { name: "state" },
    h("option", { value: "" }, "any"),
    Object.entries(STATE_NAMES).map(([value, label]) => h("option", { value }, label)),
  );
  const after = h("input", { name: "created_after", type: "datetime-local" });
  const before = h("input", { name: "created_before", type: "datetime-local" });
  const seconds = (input: HTMLInputElement) =>
    input.value ? Math.floor(new Date(input.value).getTime() / 1000) : undefined;
  const filterForm = h(
    "form",
    {
      class: "grid",
      "aria-label": "Filter tasks",
      onsubmit: (event) => {
        event.preventDefault();
        filter = {
          state: stateSelect.value === "" ? undefined : Number(stateSelect.value),
          createdAfter: seconds(after),
          createdBefore: seconds(before),
        };
        void page.guard(loadTasks)();
      },
    },
    field("State", stateSelect),
    field("Created at or after", after),
    field("Created before", before),
    h("div", {}, h("button", { type: "submit" }, "Apply")),
  );

  // ---- the live feed ---------------------------------------------------------------------
  const showResult = (result: TaskResult) => {
    results.push(result);
    const dropped = results.length > STRIP_LENGTH ? results.shift()! : null;
    if (dropped && finished.get(dropped.id) === dropped) finished.delete(dropped.id);
    finished.set(result.id, result);
    const action = pendingActions.get(result.id);
    if (action) action.superseded = true;
    replace(
      chips,
      results.map((r) => h("span", { class: `s-${r.state}`, title: `${r.id} ${STATE_NAMES[r.state]}` })),
    );
    const latencies = results.map(latencyMs).filter((value): value is number => value !== null);
    const top = Math.max(1, ...latencies);
    const x = (i: number) => (latencies.length === 1 ? 110 : (i / (latencies.length - 1)) * 216 + 2);
    const points = latencies.map((value, i) => `${x(i).toFixed(1)},${(35 - (value / top) * 32).toFixed(1)}`);
    const last = points[points.length - 1]?.split(",");
    sparkline.replaceChildren(
      svg("polyline", { points: points.join(" ") }),
      ...(last ? [svg("circle", { cx: last[0]!, cy: last[1]!, r: 2.5 })] : []),
    );
    const sorted = [...latencies].sort((a, b) => a - b);
    sparkLabel.textContent = sorted.length
      ? `latest ${ms(latencies[latencies.length - 1])}, median ${ms(sorted[Math.floor(sorted.length / 2)])}, max ${ms(top)}`
      : "";
    upsert(result);
    countsSoon();
  };

  const follow = async () => {
    const feed = page.client.subscribe(name, {
      signal: stop.signal,
      onEvent: (event) => {
        feedState.dataset["feed"] = event.type === "open" ? "open" : "reconnecting";
        feedState.textContent = event.type === "open" ? "live feed: connected" : "live feed: reconnecting…";
      },
    });
    for await (const result of feed) showResult(result);
  };

  replace(
    view,
    heading,
    h("div", { class: "card" }, summary, h("p", {}, actions)),
    h(
      "section",
      { class: "card", "aria-labelledby": "live-heading" },
      h("h2", { id: "live-heading" }, "Live"),
      counts,
      h("p", {}, feedState),
      chips,
      h("div", { class: "strip" }, sparkline, sparkLabel),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "tasks-heading" },
      h("h2", { id: "tasks-heading" }, "Tasks"),
      filterForm,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { "aria-label": "Tasks" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Task", "State", "Request"].map((label) => h("th", { scope: "col" }, label)),
              h("th", { scope: "col", class: "hide-narrow" }, "Created"),
              h("th", { scope: "col", class: "num" }, "Attempts"),
              h("th", { scope: "col", class: "num" }, "Status"),
              h("th", { scope: "col" }, "Error"),
              h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")),
            ),
          ),
          rows,
        ),
      ),
      more,
    ),
    editCard,
  );

  void page.guard(async () => {
    await loadApp();
    // The feed first: a result that lands while the first page loads is not missed.
    void page.guard(follow)();
    await Promise.all([loadCounts(), loadTasks()]);
  })();
  const timer = setInterval(
    () => document.visibilityState === "visible" && void loadCounts().catch(() => undefined),
    REFRESH_MS,
  );
  page.onLeave(() => clearInterval(timer));
}
