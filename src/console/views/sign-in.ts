/** The sign-in form: an access key and its secret, kept in this tab only. */
import { field, h, replace } from "../dom";
import type { Keys } from "../session";

export function renderSignIn(view: HTMLElement, signIn: (keys: Keys) => Promise<void>, accessKey = ""): void {
  const ak = h("input", {
    name: "access_key",
    autocomplete: "username",
    required: true,
    value: accessKey,
    spellcheck: "false",
  });
  const sk = h("input", { name: "secret_key", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card",
      "aria-label": "Sign in",
      onsubmit: (event) => {
        event.preventDefault();
        button.disabled = true;
        void signIn({ accessKey: ak.value.trim(), secretKey: sk.value }).finally(() => (button.disabled = false));
      },
    },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "The admin pair or an app key. Keys stay in this tab (sessionStorage) and sign every request here; the secret never leaves the browser.",
    ),
    h("div", { class: "grid-2" }, field("Access key", ak), field("Secret key", sk)),
    h("p", {}, button),
  );
  replace(view, form);
  (accessKey ? sk : ak).focus();
}
