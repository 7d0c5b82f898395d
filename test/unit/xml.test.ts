// Proves the Tencent CI door's XML (src/front-doors/xml.ts): documents read as the door expects (text trimmed, empty elements "", repeated names as arrays, entities and CDATA decoded, attributes and comments passed over), malformed ones refused, answers written and escaped.
import { describe, expect, it } from "vitest";
import { readXml, writeXml } from "../../src/front-doors/xml";

describe("readXml", () => {
  it("reads a queue update as the COS SDK sends it", () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Request><Name>q</Name><QueueID>q</QueueID><State>Active</State><NotifyConfig><Url>http://x/?a=1&amp;b=2</Url><Type>Url</Type><Event>TaskFinish,WorkflowFinish</Event><State>On</State></NotifyConfig></Request>`;
    expect(readXml(xml)).toEqual({
      Request: {
        Name: "q",
        QueueID: "q",
        State: "Active",
        NotifyConfig: { Url: "http://x/?a=1&b=2", Type: "Url", Event: "TaskFinish,WorkflowFinish", State: "On" },
      },
    });
  });

  it("trims text, reads an empty element as empty text, repeats as an array, CDATA as text, and keeps text beside elements apart", () => {
    expect(readXml("<Request><State> Paused </State><NotifyConfig/></Request>")).toEqual({
      Request: { State: "Paused", NotifyConfig: "" },
    });
    expect(readXml("<Request><State>A</State><State>B</State><State>C</State></Request>")).toEqual({
      Request: { State: ["A", "B", "C"] },
    });
    expect(readXml('<Request a="1"><!-- c --><State><![CDATA[Active]]></State>text</Request>')).toEqual({
      Request: { State: "Active", "#text": "text" },
    });
  });

  it("refuses what is not well-formed XML: unclosed, not XML, empty, two roots", () => {
    for (const xml of ["<Request><State>Active</Request>", "not xml", "", "<a/><b/>"]) expect(readXml(xml)).toBeNull();
  });
});

describe("writeXml", () => {
  it("writes objects as elements, arrays as repeated elements, null as an empty element, and escapes text", () => {
    expect(
      writeXml({ Response: { RequestId: "r", Queue: [{ QueueId: "a" }, { QueueId: "b" }], Total: 2, Gone: null } }),
    ).toBe(
      "<Response><RequestId>r</RequestId><Queue><QueueId>a</QueueId></Queue><Queue><QueueId>b</QueueId></Queue><Total>2</Total><Gone/></Response>",
    );
    expect(writeXml({ Error: { Message: `a <b> & "c" 'd'`, Skipped: undefined } })).toBe(
      "<Error><Message>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;</Message></Error>",
    );
  });

  it("round-trips what it writes", () => {
    const document = { Request: { Name: "q", NotifyConfig: { Url: "http://x/?a=1&b=2", Event: "A,B" } } };
    expect(readXml(writeXml(document))).toEqual(document);
  });
});
