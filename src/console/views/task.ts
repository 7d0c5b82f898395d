/** One task: its full id, state, attempts and error, the request as recorded and the origin's response; Retry or Cancel. */
import type { TaskRecord } from "../../client/index";
import { h, kv, replace } from "../dom";
import { STATE_NAMES, headerTable, latencyMs, ms, nanosTime, renderBody, stateBadge } from "../format";
import type { Page } from "../page";

/** While a task is still waiting or running, it is read again this often. */
const POLL_MS = 1000;

export function renderTask(view: HTMLElement, page: Page, id: string): void {
  document.title = `Task ${id} · asyncgate`;
  page.crumbs(["Apps", "#/apps"], [id]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let left = false;
  page.onLeave(() => ((left = true), clearTimeout(timer)));

  const act = (label: string, run: () => Promise<TaskRecord>) =>
    page.guard(async () => {
      show(await run());
      page.notify(label);
    });

  const show = (task: TaskRecord) => {
    clearTimeout(timer);
    page.crumbs(["Apps", "#/apps"], [task.app, `#/apps/${encodeURIComponent(task.app)}`], [task.id]);
    const copy = h(
      "button",
      {
        type: "button",
        "aria-label": "Copy task id",
        onclick: () => void navigator.clipboard?.writeText(task.id).then(() => page.notify("Task id copied")),
      },
      "Copy",
    );
    const latency = latencyMs(task);
    replace(
      view,
      h("h1", {}, "Task ", h("span", { class: "id", "data-task-id": task.id }, task.id), " ", copy),
      h(
        "div",
        { class: "card" },
        h(
          "dl",
          { class: "kv" },
          kv("State", h("span", { "data-state": task.state }, stateBadge(task.state))),
          kv("App", h("a", { href: `#/apps/${encodeURIComponent(task.app)}` }, task.app)),
          kv("Created", nanosTime(task.created_at)),
          kv("Last attempt", nanosTime(task.exec_at)),
          latency !== null && kv("Submit to finish", ms(latency)),
          kv("Attempts", String(task.attempts)),
          kv("Error", task.error ? h("span", { class: "error" }, task.error) : "none"),
          task.eta !== undefined && task.state === 0 && kv("Next attempt", new Date(task.eta * 1000).toLocaleString()),
          task.callback !== undefined && kv("Callback", h("span", { class: "mono" }, task.callback)),
          kv("Request id", h("span", { class: "mono" }, task.req_id)),
        ),
        h(
          "p",
          { class: "actions" },
          task.state === 11 &&
            h(
              "button",
              {
                type: "button",
                class: "primary",
                onclick: act("Queued again with a fresh attempt budget", () => page.client.retry(task.id)),
              },
              "Retry",
            ),
          task.state === 0 &&
            h(
              "button",
              { type: "button", class: "danger", onclick: act("Canceled", () => page.client.cancel(task.id)) },
              "Cancel",
            ),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "request-heading" },
        h("h2", { id: "request-heading" }, "Request"),
        h("p", { class: "mono" }, `${task.request.method} ${task.request.path}${task.request.raw_query}`),
        headerTable(task.request.header),
        renderBody(task.request.body, task.request.header, `${task.id}-request.bin`),
      ),
      h(
        "section",
        {
          class: "card",
          "aria-labelledby": "response-heading",
          "data-response": task.response ? task.response.status_code : "none",
        },
        h("h2", { id: "response-heading" }, "Response"),
        task.response
          ? [
              h("p", {}, `Status ${task.response.status_code}`),
              headerTable(task.response.header),
              renderBody(task.response.body, task.response.header, `${task.id}-response.bin`),
            ]
          : h(
              "p",
              { class: "muted" },
              task.state >= 10 ? "No response from the origin." : `No response yet (${STATE_NAMES[task.state]}).`,
            ),
      ),
    );
    if (task.state < 10 && !left) timer = setTimeout(() => void load(), POLL_MS);
  };

  const load = page.guard(async () => {
    const task = await page.client.getTask(id);
    if (!left) show(task);
  });
  replace(view, h("p", { class: "muted" }, "Loading…"));
  void load();
}
