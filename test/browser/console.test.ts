// The web console in a real browser: Debian's Chromium (headless, driven by playwright-core)
// against `wrangler dev`, with tasks submitted from Node to a real origin. Screenshots of each
// view go to test/artifacts/ (ignored by git).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const ARTIFACTS = "test/artifacts";

describe("web console in Chromium", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Uncaught exceptions and console errors of the signed-in page: there must be none. */
  const pageErrors: string[] = [];
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-console-"));
  const control = () => `localhost:${port}`;
  const base = () => `http://127.0.0.1:${port}`;
  const consoleUrl = (keys: { accessKey: string; secretKey: string }) =>
    `${base()}/console#ak=${encodeURIComponent(keys.accessKey)}&sk=${encodeURIComponent(keys.secretKey)}`;

  const submit = async (path: string, headers: Record<string, string> = {}) => {
    const response = await signedCall(port, `shop.async.localhost:${port}`, "POST", path, {
      body: JSON.stringify({ hello: "console" }),
      headers,
    });
    expect(response.status).toBe(202);
    return response.json<{ id: string }>().id;
  };
  const appState = async (name: string) =>
    (await signedCall(port, control(), "GET", `/v1/apps/${name}`)).json<{ state: string }>().state;
  const shoot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
  const watchErrors = (target: Page, sink: string[]) => {
    target.on("pageerror", (error) => sink.push(`pageerror: ${error.message}`));
    target.on("console", (message) => {
      if (message.type() === "error") sink.push(`console: ${message.text()} (${message.location().url})`);
    });
  };

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium) or set CHROMIUM_PATH`,
      );
    mkdirSync(ARTIFACTS, { recursive: true });
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
    for (const name of ["shop", "billing"]) {
      const created = await signedCall(port, control(), "POST", "/v1/apps", {
        body: JSON.stringify({ name, origin: origin.url }),
      });
      expect(created.status).toBe(201);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // No network here: Chromium's own background connections would only fail.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    watchErrors(page, pageErrors);
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  it("wrong keys are refused with a clear message, and nothing else is shown", async () => {
    const other = await context.newPage();
    const errors: string[] = [];
    watchErrors(other, errors);
    await other.goto(consoleUrl({ accessKey: E2E_KEYS.accessKey, secretKey: "not-the-secret" }));
    await other.locator("#notice.error").filter({ hasText: "refused these keys" }).waitFor();
    expect(await other.locator("form[aria-label='Sign in']").count()).toBe(1);
    expect(await other.locator("table").count()).toBe(0);
    expect(await other.evaluate("sessionStorage.length + localStorage.length")).toBe(0);
    // The keys left the address bar.
    expect(other.url()).not.toContain("not-the-secret");
    await other.screenshot({ path: join(ARTIFACTS, "console-refused.png") });
    // The only console error is the browser's own note of the refused request.
    expect(errors.every((line) => /status of 401/.test(line))).toBe(true);
    await other.close();
  });

  it("signs in from the URL fragment: keys in sessionStorage only, out of the address bar; the apps are listed", async () => {
    await page.goto(consoleUrl(E2E_KEYS));
    await page.locator("tr[data-app='shop']").waitFor();
    await page.locator("tr[data-app='billing']").waitFor();
    expect(new URL(page.url()).hash).toBe("#/apps");
    expect(await page.evaluate("({ session: sessionStorage.length, local: localStorage.length })")).toEqual({
      session: 1,
      local: 0,
    });
    expect(await page.locator("tr[data-app='shop'] .badge").textContent()).toBe("Active");
    await shoot("apps");
  });

  it("a task submitted from Node appears in the app's view with its final state within 2 s, without a reload", async () => {
    await page.getByRole("link", { name: "shop", exact: true }).click();
    await page.locator("[data-feed='open']").waitFor();
    const submitted = Date.now();
    const id = await submit("/hello?from=node");
    await page.locator(`tr[data-task-id='${id}'][data-state='10']`).waitFor({ timeout: 2000 });
    expect(Date.now() - submitted).toBeLessThan(2000);
    // The id in full, monospace and selectable as one.
    expect(await page.locator(`tr[data-task-id='${id}'] a.id`).textContent()).toBe(id);
    await page.locator(".results span.s-10").first().waitFor();
    await shoot("app");

    await page.locator(`tr[data-task-id='${id}'] a.id`).click();
    await page.locator("[data-response='200']").waitFor();
    expect(await page.locator("h1 [data-task-id]").textContent()).toBe(id);
    // The origin's response: its JSON echo of the request, pretty-printed.
    const response = await page.locator("[data-response='200'] pre[data-body='json']").textContent();
    expect(JSON.parse(response!)).toMatchObject({ method: "POST", url: "/hello?from=node" });
    expect(response).toContain('\n  "method": "POST"');
    await shoot("task");
  });

  it("shows a binary request body as hex, and its download is the same bytes", async () => {
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256));
    const response = await signedCall(port, `shop.async.localhost:${port}`, "PUT", "/blob", {
      body: bytes,
      headers: { "content-type": "application/octet-stream" },
    });
    const { id } = response.json<{ id: string }>();
    await page.goto(`${base()}/console#/tasks/${id}`);
    const hex = await page.locator("section[aria-labelledby='request-heading'] pre[data-body='hex']").textContent();
    expect(hex!.split("\n")[0]).toBe(
      `000000  ${[...bytes.subarray(0, 16)].map((byte) => byte.toString(16).padStart(2, "0")).join(" ")}`,
    );
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download (300 bytes)" }).click(),
    ]);
    const saved = await download.path();
    expect(Buffer.compare((await import("node:fs")).readFileSync(saved), bytes)).toBe(0);
  });

  it("a body downloads as bytes (application/octet-stream), never as its own type: an HTML body is not rendered", async () => {
    const html = Buffer.from("<script>document.title='ran'</script>\u0001", "utf8");
    const response = await signedCall(port, `shop.async.localhost:${port}`, "PUT", "/page", {
      body: html,
      headers: { "content-type": "text/html" },
    });
    const { id } = response.json<{ id: string }>();
    // A page of its own that records the type of every blob the console makes a URL for (the
    // console's CSP allows no fetch of a blob: URL to read it back).
    const other = await context.newPage();
    await other.addInitScript(() => {
      const types: string[] = [];
      Object.assign(globalThis, { blobTypes: types });
      const create = URL.createObjectURL.bind(URL);
      URL.createObjectURL = (object: Blob) => {
        types.push(object.type);
        return create(object);
      };
    });
    await other.goto(consoleUrl(E2E_KEYS));
    await other.locator("tr[data-app='shop']").waitFor();
    await other.goto(`${base()}/console#/tasks/${id}`);
    await other.locator("section[aria-labelledby='request-heading'] a[download]").waitFor();
    expect(await other.evaluate(() => (globalThis as unknown as { blobTypes: string[] }).blobTypes)).toEqual([
      "application/octet-stream",
    ]);
    await other.close();
  });

  it("a link with other keys asks before replacing the signed-in ones", async () => {
    const created = await signedCall(port, control(), "POST", "/v1/apps/shop/keys", {
      body: JSON.stringify({ permissions: ["manage"] }),
    });
    const key = created.json<{ access_key: string; secret_key: string }>();
    await page.goto(`${base()}/console#/apps`);
    await page.locator("tr[data-app='billing']").waitFor();
    const stored = () => page.evaluate(() => JSON.parse(sessionStorage.getItem("asyncgate.keys") ?? "null").accessKey);
    // Declined: the admin's keys stay.
    let asked = "";
    page.once("dialog", (dialog) => {
      asked = dialog.message();
      void dialog.dismiss();
    });
    await page.goto(consoleUrl({ accessKey: key.access_key, secretKey: key.secret_key }));
    await page.locator("tr[data-app='billing']").waitFor();
    expect(asked).toContain(key.access_key);
    expect(await stored()).toBe(E2E_KEYS.accessKey);
    // Accepted: the link's keys sign in (an app key sees its own app only).
    page.once("dialog", (dialog) => void dialog.accept());
    await page.goto(consoleUrl({ accessKey: key.access_key, secretKey: key.secret_key }));
    await page.locator("tr[data-app='shop']").waitFor();
    await vi.waitUntil(async () => (await stored()) === key.access_key, { timeout: 5000 });
    // Back to the admin, for the tests that follow.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.goto(consoleUrl(E2E_KEYS));
    await page.locator("tr[data-app='billing']").waitFor();
    expect(await stored()).toBe(E2E_KEYS.accessKey);
  });

  it("a key without manage signs in read-only: its own app's tasks and feed, no settings or actions", async () => {
    const created = await signedCall(port, control(), "POST", "/v1/apps/shop/keys", {
      body: JSON.stringify({ permissions: ["query", "subscribe"] }),
    });
    const key = created.json<{ access_key: string; secret_key: string }>();
    const reader = await context.newPage();
    const errors: string[] = [];
    watchErrors(reader, errors);
    await reader.goto(consoleUrl({ accessKey: key.access_key, secretKey: key.secret_key }));
    await reader.locator("h1 .badge", { hasText: "read-only" }).waitFor();
    expect(new URL(reader.url()).hash).toBe("#/apps/shop");
    await reader.locator("tr[data-task-id]").first().waitFor();
    await reader.locator("[data-feed='open']").waitFor();
    expect(await reader.getByRole("button", { name: "Redrive failed…" }).count()).toBe(0);
    // The only console errors are the browser's notes of the refused (403) app listing.
    expect(errors.every((line) => /status of 403/.test(line))).toBe(true);
    await reader.close();
  });

  it("a failed task is retried from the page and succeeds", async () => {
    await page.goto(`${base()}/console#/apps/shop`);
    await page.locator("[data-feed='open']").waitFor();
    // Fails once (503) with no retries left; the same path answers 200 the next time.
    const id = await submit("/flaky/console-retry/1", { "Asyncgate-Retries": "0" });
    const row = page.locator(`tr[data-task-id='${id}']`);
    await page.locator(`tr[data-task-id='${id}'][data-state='11']`).waitFor({ timeout: 5000 });
    expect(await row.locator("td").nth(5).textContent()).toBe("503");
    await shoot("app-failed");
    await row.getByRole("button", { name: `Retry ${id}` }).click();
    await page.locator(`tr[data-task-id='${id}'][data-state='10']`).waitFor({ timeout: 5000 });
    const task = (await signedCall(port, control(), "GET", `/v1/task/${id}`)).json<{
      state: number;
      attempts: number;
    }>();
    expect(task.state).toBe(10);
  });

  it("redrives the failed tasks after a dry run and a confirmation", async () => {
    const ids = [
      await submit("/status/500", { "Asyncgate-Retries": "0" }),
      await submit("/status/500", { "Asyncgate-Retries": "0" }),
    ];
    for (const id of ids) await page.locator(`tr[data-task-id='${id}'][data-state='11']`).waitFor({ timeout: 5000 });
    let asked = "";
    page.once("dialog", (dialog) => {
      asked = dialog.message();
      void dialog.accept();
    });
    await page.getByRole("button", { name: "Redrive failed…" }).click();
    await page.locator("#notice").filter({ hasText: "2 tasks redriven" }).waitFor();
    expect(asked).toBe("Retry 2 failed tasks of shop with a fresh attempt budget?");
    // Each runs again, with a fresh budget of the app's attempts (the origin still answers 500).
    for (const id of ids) {
      await expect
        .poll(
          async () =>
            (await signedCall(port, control(), "GET", `/v1/task/${id}`)).json<{ attempts: number }>().attempts,
          { timeout: 5000 },
        )
        .toBeGreaterThanOrEqual(2);
    }
  });

  it("pauses and resumes the app", async () => {
    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await page.locator("h1 .badge.Paused").waitFor();
    expect(await appState("shop")).toBe("Paused");
    await page.getByRole("button", { name: "Resume", exact: true }).click();
    await page.locator("h1 .badge.Active").waitFor();
    expect(await appState("shop")).toBe("Active");
  });

  it("creates, edits and deletes an app (with a confirmation), and cancels a waiting task", async () => {
    await page.goto(`${base()}/console#/apps`);
    await page.getByLabel("Name", { exact: true }).fill("made-here");
    await page.getByLabel("Origin", { exact: true }).fill(origin.url);
    await page.getByRole("button", { name: "Create app" }).click();
    await page
      .locator(".secret code")
      .filter({ hasText: /^whsec_/ })
      .waitFor();
    await page.locator("tr[data-app='made-here']").waitFor();

    await page.getByRole("link", { name: "made-here", exact: true }).click();
    await page.getByLabel("Attempt timeout (s)").fill("42");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("dd", { hasText: "42 s" }).waitFor();
    expect((await signedCall(port, control(), "GET", "/v1/apps/made-here")).json<{ timeout: number }>().timeout).toBe(
      42,
    );

    // Paused, a submitted task waits: Cancel beside it.
    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await page.locator("h1 .badge.Paused").waitFor();
    const waiting = await signedCall(port, `made-here.async.localhost:${port}`, "POST", "/later", { body: "{}" });
    const id = waiting.json<{ id: string }>().id;
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByRole("button", { name: `Cancel ${id}` }).click();
    await page.locator(`tr[data-task-id='${id}'][data-state='11']`).waitFor();
    expect(await page.locator(`tr[data-task-id='${id}'] td.error`).textContent()).toBe("canceled");

    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Delete app" }).click();
    await page.locator("tr[data-app='shop']").waitFor();
    expect(await page.locator("tr[data-app='made-here']").count()).toBe(0);
    expect((await signedCall(port, control(), "GET", "/v1/apps/made-here")).status).toBe(404);
  });

  it("is readable at phone width: no view scrolls sideways", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [hash, ready] of [
      ["#/apps", "tr[data-app='shop']"],
      ["#/apps/shop", "tr[data-task-id]"],
    ] as const) {
      await page.goto(`${base()}/console${hash}`);
      await page.locator(ready).first().waitFor();
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    }
    await shoot("phone");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("signs in by keyboard from the form", async () => {
    const other = await context.newPage();
    await other.goto(`${base()}/console`);
    // A new tab has its own sessionStorage: the form, with the access key field focused.
    await other.locator("form[aria-label='Sign in']").waitFor();
    await other.keyboard.type(E2E_KEYS.accessKey);
    await other.keyboard.press("Tab");
    await other.keyboard.type(E2E_KEYS.secretKey);
    await other.keyboard.press("Enter");
    await other.locator("tr[data-app='shop']").waitFor();
    await other.close();
  });

  it("logged no page errors", () => {
    expect(pageErrors).toEqual([]);
  });
});
