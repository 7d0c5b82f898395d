// Proves request recording: canonical names, repeated values, and what is never recorded.
import { describe, expect, it } from "vitest";
import { canonicalHeaderName, splitHeaderValue, toHeaders } from "../../src/http/headers";
import { recordHeaders } from "../../src/submit/record";
import { rawQueryOf } from "../../src/submit/handler";

describe("recordHeaders", () => {
  it("canonicalises names and keeps repeated headers as separate values", () => {
    const headers = new Headers([
      ["content-type", "application/json"],
      ["x-tag", "a"],
      ["x-tag", "b"],
      ["user-agent", "Mozilla/5.0 (X11, Linux)"],
    ]);
    expect(recordHeaders(headers)).toEqual({
      "Content-Type": ["application/json"],
      "X-Tag": ["a", "b"],
      "User-Agent": ["Mozilla/5.0 (X11, Linux)"],
    });
  });

  it("drops Authorization, the signed X-Qiniu-Date, hop-by-hop headers, the task-metadata namespace and signed control headers", () => {
    const headers = new Headers({
      authorization: "Qiniu ak:sig",
      "x-qiniu-date": "20261126T080000Z",
      connection: "keep-alive",
      "transfer-encoding": "chunked",
      "asyncgate-task-id": "spoofed",
      "asyncgate-retry-count": "9",
      "asyncgate-delay": "10s",
      "x-qiniu-asyncgate-callback": "https://hooks.example.com/cb",
      "x-cloudtasks-taskname": "spoofed",
      "x-kept": "yes",
    });
    expect(recordHeaders(headers)).toEqual({ "X-Kept": ["yes"] });
  });

  it("round-trips through replay byte for byte", () => {
    const original = new Headers([
      ["accept", "text/html, application/json;q=0.9"],
      ["x-q", '"a, b", c'],
    ]);
    const replayed = toHeaders(recordHeaders(original));
    expect(replayed.get("accept")).toBe(original.get("accept"));
    expect(replayed.get("x-q")).toBe(original.get("x-q"));
  });
});

describe("helpers", () => {
  it.each([
    ["content-type", "Content-Type"],
    ["X-QINIU-DATE", "X-Qiniu-Date"],
    ["etag", "Etag"],
  ])("canonicalHeaderName(%s)", (name, expected) => expect(canonicalHeaderName(name)).toBe(expected));

  it("splits on ', ' outside quotes and comments only", () => {
    expect(splitHeaderValue("a, b")).toEqual(["a", "b"]);
    expect(splitHeaderValue("a,b")).toEqual(["a,b"]);
    expect(splitHeaderValue('"x, y", z')).toEqual(['"x, y"', "z"]);
    expect(splitHeaderValue("ua (k, v)")).toEqual(["ua (k, v)"]);
  });

  it.each([
    ["http://h/p", ""],
    ["http://h/p?", "?"],
    ["http://h/p?a=1&a=2", "?a=1&a=2"],
    ["http://h/p?q=%E4%BD%A0#frag", "?q=%E4%BD%A0"],
    ["http://h/p?a=1&e=1795000000&token=ak:c2ln", "?a=1"],
    ["http://h/p?e=1795000000&token=shop.0123456789abcdef01234567:c2lnbmF0dXJl=", ""],
    ["http://h/p?token=mine&e=5", "?token=mine&e=5"],
    ["http://h/p?e=soon&token=ak:sig", "?e=soon&token=ak:sig"],
  ])("rawQueryOf(%s)", (url, expected) => expect(rawQueryOf(url)).toBe(expected));
});
