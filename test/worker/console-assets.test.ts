// The console's files are served from Workers static assets at /console on the control host, with
// a strict CSP; on an app host, /console is a path like any other: a task submission.
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { CONTROL, appUrl, call, createApp, getTask, uniqueApp } from "./helpers";

const get = (url: string, init: RequestInit = {}) => exports.default.fetch(new Request(url, init));

describe("console assets", () => {
  const app = uniqueApp("consolehost");
  beforeAll(async () => {
    await createApp(app);
  });

  it("serves the page at /console and /console/, unauthenticated, its scripts and styles from this host only", async () => {
    for (const path of ["/console", "/console/"]) {
      const response = await get(`${CONTROL}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/html/);
      const html = await response.text();
      expect(html).toContain('<script type="module" src="/console/console.js"></script>');
      expect(html).not.toMatch(/https?:\/\//);
      const csp = response.headers.get("content-security-policy")!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("connect-src 'self'");
      expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    }
    const script = await get(`${CONTROL}/console/console.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    expect((await script.text()).length).toBeGreaterThan(1000);
    expect((await get(`${CONTROL}/console/console.css`)).status).toBe(200);
  });

  it("answers JSON errors for a missing file and for other methods", async () => {
    const missing = await get(`${CONTROL}/console/nope.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe("not_found");
    const post = await get(`${CONTROL}/console`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(((await post.json()) as { code: string }).code).toBe("method_not_allowed");
  });

  it("on an app host, /console/console.js is a submission like any path", async () => {
    const unsigned = await get(appUrl(app, "/console/console.js"));
    expect(unsigned.status).toBe(401);
    const submitted = await call(appUrl(app, "/console/console.js"), { method: "GET" });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: string };
    expect((await getTask(id)).request.path).toBe("/console/console.js");
  });
});
