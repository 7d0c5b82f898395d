/**
 * The web console: a single page on the control API and the live feed, the same ones clients
 * use (no second backend). Routes live in the fragment: #/apps, #/apps/<name>, #/tasks/<id>.
 */
import { h, replace, type Child } from "./dom";
import type { Page } from "./page";
import {
  clientFor,
  describe,
  forgetKeys,
  appOfKey,
  isForbidden,
  isKeyRefused,
  keysFromFragment,
  storeKeys,
  storedKeys,
  type Keys,
} from "./session";
import { renderApp } from "./views/app";
import { renderApps } from "./views/apps";
import { renderSignIn } from "./views/sign-in";
import { renderTask } from "./views/task";

const view = document.getElementById("view")!;
const notice = document.getElementById("notice")!;
const crumbs = document.getElementById("crumbs")!;
const who = document.getElementById("who")!;
let leaving: (() => void)[] = [];
let noticeTimer: ReturnType<typeof setTimeout> | undefined;

function notify(message: string, kind: "info" | "error" = "info"): void {
  notice.className = kind;
  notice.textContent = message;
  clearTimeout(noticeTimer);
  if (kind === "info") noticeTimer = setTimeout(() => (notice.textContent = ""), 6000);
}

function signOut(message?: string): void {
  forgetKeys();
  leave();
  replace(who);
  replace(crumbs);
  if (message) notify(message, "error");
  renderSignIn(view, signIn);
}

async function signIn(keys: Keys): Promise<void> {
  // Checked before anything is shown: wrong keys see one message and nothing else.
  try {
    await clientFor(keys).apps.list({ pageSize: 1 });
    delete keys.readOnlyApp;
  } catch (error) {
    // A good key without `manage` (403, not 401) signs in read-only, to its own app.
    const app = appOfKey(keys.accessKey);
    if (!(isForbidden(error) && app)) return refused(keys, error);
    keys.readOnlyApp = app;
  }
  storeKeys(keys);
  notify("");
  if (keys.readOnlyApp) history.replaceState(null, "", `${location.pathname}#/apps/${keys.readOnlyApp}`);
  else if (!location.hash.startsWith("#/")) history.replaceState(null, "", `${location.pathname}#/apps`);
  route();
}

/** Keys that could not sign in: one message, and the sign-in form again. */
function refused(keys: Keys, error: unknown): void {
  forgetKeys();
  notify(
    isKeyRefused(error)
      ? `The gateway refused these keys: ${describe(error)}`
      : `Could not sign in: ${describe(error)}`,
    "error",
  );
  renderSignIn(view, signIn, keys.accessKey);
}

function leave(): void {
  for (const stop of leaving) stop();
  leaving = [];
}

function route(): void {
  leave();
  const keys = storedKeys();
  if (!keys) return signOut();
  replace(
    who,
    h("span", { class: "mono", title: "access key" }, keys.accessKey),
    h("button", { type: "button", onclick: () => signOut() }, "Sign out"),
  );
  let left = false;
  leaving.push(() => (left = true));
  const fail = (error: unknown) =>
    isKeyRefused(error)
      ? signOut(`Signed out: the gateway refused these keys (${describe(error)})`)
      : notify(describe(error), "error");
  const page: Page = {
    client: clientFor(keys),
    keys,
    notify,
    fail,
    guard: (run) => async () => {
      try {
        await run();
      } catch (error) {
        if (!left) fail(error); // left the view: nothing to tell
      }
    },
    crumbs: (...parts) =>
      replace(
        crumbs,
        parts.map(([label, href]): Child => h("span", {}, href ? h("a", { href }, label) : label)),
      ),
    onLeave: (stop) => leaving.push(stop),
  };
  const [, section, name] = location.hash.split("/").map(decodeURIComponent);
  replace(view);
  // A read-only key sees its own app (and its tasks), never the app list.
  if (keys.readOnlyApp && section !== "tasks") renderApp(view, page, keys.readOnlyApp);
  else if (section === "apps" && name) renderApp(view, page, name);
  else if (section === "tasks" && name) renderTask(view, page, name);
  else renderApps(view, page);
  view.focus();
}

/**
 * Keys from a link (`#ak=…&sk=…`) sign in; they replace other signed-in keys only when the person
 * says so: a link from someone else must not silently swap whose keys the console acts with.
 */
function signInFromLink(keys: Keys): void {
  const current = storedKeys();
  const question = `Replace the signed-in keys (${current?.accessKey}) with this link's (${keys.accessKey})?`;
  if (current && current.accessKey !== keys.accessKey && !confirm(question)) return route();
  void signIn(keys);
}

window.addEventListener("hashchange", () => {
  // A console URL pasted into an open tab signs in again.
  const keys = keysFromFragment();
  if (keys) signInFromLink(keys);
  else route();
});

const fromFragment = keysFromFragment();
if (fromFragment) signInFromLink(fromFragment);
else route();
