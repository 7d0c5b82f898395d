/** How the console shows states, times and bodies. */
import { decodeBody, type TaskRecord } from "../client/index";
import { headerValues } from "../http/headers";
import { h, type Child } from "./dom";

export const STATE_NAMES: Record<number, string> = { 0: "waiting", 1: "doing", 10: "success", 11: "failed" };

export const stateBadge = (state: number): HTMLElement =>
  h("span", { class: `badge s-${state}` }, STATE_NAMES[state] ?? String(state));

/** A unix-nanoseconds timestamp as local date and time. */
export const nanosTime = (ns: number | undefined): string => (ns ? new Date(ns / 1e6).toLocaleString() : "—");

/** Seconds as `42 s`, `5 m 3 s`, `2 h 10 m`, `3 d 4 h`. */
export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${seconds % 60} s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} m`;
  return `${Math.floor(seconds / 86_400)} d ${Math.floor((seconds % 86_400) / 3600)} h`;
}

export const ms = (value: number | null | undefined): string =>
  value === null || value === undefined ? "—" : `${Math.round(value)} ms`;

/** Submission to final outcome, in ms, when the task has finished. */
export const latencyMs = (task: TaskRecord): number | null =>
  task.exec_at && task.state >= 10 ? (task.exec_at - task.created_at) / 1e6 : null;

const header = (headers: Record<string, string[]>, name: string): string =>
  headerValues(headers, name)?.join(", ") ?? "";

/** A body as JSON (pretty-printed), text, or hex with a download link for anything else. */
export function renderBody(base64: string, headers: Record<string, string[]>, fileName: string): Child {
  const bytes = decodeBody(base64);
  if (bytes.byteLength === 0) return h("p", { class: "muted" }, "(empty body)");
  let text: string | null = null;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = null;
  }
  if (text !== null && /json/i.test(header(headers, "content-type"))) {
    try {
      return h("pre", { "data-body": "json" }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      // declared JSON but not: shown as text
    }
  }
  // eslint-disable-next-line no-control-regex
  if (text !== null && !/[\u0000-\u0008\u000e-\u001f]/.test(text)) return h("pre", { "data-body": "text" }, text);
  const shown = bytes.subarray(0, 4096);
  const lines: string[] = [];
  for (let offset = 0; offset < shown.byteLength; offset += 16) {
    const row = Array.from(shown.subarray(offset, offset + 16), (byte) => byte.toString(16).padStart(2, "0"));
    lines.push(`${offset.toString(16).padStart(6, "0")}  ${row.join(" ")}`);
  }
  // Always as bytes to save, never as the body's own type: a blob URL opened as text/html would
  // run the body's script with the console's origin.
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
  return [
    h(
      "pre",
      { "data-body": "hex" },
      lines.join("\n") +
        (bytes.byteLength > shown.byteLength ? `\n… ${bytes.byteLength - shown.byteLength} more bytes` : ""),
    ),
    h("a", { class: "button", href: url, download: fileName }, `Download (${bytes.byteLength} bytes)`),
  ];
}

export function headerTable(headers: Record<string, string[]>): HTMLElement {
  const names = Object.keys(headers);
  if (names.length === 0) return h("p", { class: "muted" }, "(no headers)");
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Header"), h("th", { scope: "col" }, "Value"))),
    h(
      "tbody",
      {},
      names.map((name) =>
        h("tr", {}, h("td", { class: "mono" }, name), h("td", { class: "mono" }, headers[name]!.join(", "))),
      ),
    ),
  );
}
