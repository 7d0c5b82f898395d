// Proves the seeds' own clients work unchanged against `wrangler dev`: Huawei's official
// FunctionGraph SDK (`asyncInvokeFunction`, seed 002) and Tencent's cos-nodejs-sdk-v5
// (`cos.request` on /docqueue, seed 001), each signing with its own scheme, over the same apps,
// tasks and keys as the native API.
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BasicCredentials } from "@huaweicloud/huaweicloud-sdk-core";
import { Logger4jInstance } from "@huaweicloud/huaweicloud-sdk-core/logger/log4jLogger";
import { AsyncInvokeFunctionRequest, FunctionGraphClient } from "@huaweicloud/huaweicloud-sdk-functiongraph";
import COS from "cos-nodejs-sdk-v5";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin } from "../../scripts/origin.mjs";
import { E2E_KEYS, freePort, signedCall, startGateway, type Gateway } from "../support/wrangler-dev";

interface Keys {
  accessKey: string;
  secretKey: string;
}

interface TaskRecord {
  id: string;
  app: string;
  state: number;
  request: { method: string; path: string; raw_query: string; body: string };
  response?: { status_code: number };
}

describe("the seeds' front doors under wrangler dev", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let gateway: Gateway;
  let port: number;
  const persistTo = mkdtempSync(join(tmpdir(), "asyncgate-front-doors-"));
  const control = () => `127.0.0.1:${port}`;
  const admin = (method: string, path: string, body?: unknown) =>
    signedCall(port, control(), method, path, body === undefined ? {} : { body: JSON.stringify(body) });

  async function createKey(app: string, permissions: string[]): Promise<Keys> {
    const response = await admin("POST", `/v1/apps/${app}/keys`, { permissions });
    expect(response.status).toBe(201);
    const created = response.json<{ access_key: string; secret_key: string }>();
    return { accessKey: created.access_key, secretKey: created.secret_key };
  }

  async function waitForState(id: string, state: number, timeoutMs = 15_000): Promise<TaskRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await admin("GET", `/v1/task/${id}`);
      expect(response.status).toBe(200);
      const task = response.json<TaskRecord>();
      if (task.state === state) return task;
      if (Date.now() > deadline) throw new Error(`task ${id} stayed in state ${task.state}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  beforeAll(async () => {
    // The Huawei SDK prints every refused call (axios config and all) to stdout; the tests read its errors.
    Logger4jInstance.level = "off";
    origin = await startOrigin({ quiet: true });
    port = await freePort();
    gateway = await startGateway({ port, persistTo });
    expect(
      (
        await admin("POST", "/v1/apps", {
          name: "fgdemo",
          origin: origin.url,
          invoke_path: "/fg/invoke?source=functiongraph",
        })
      ).status,
    ).toBe(201);
    expect((await admin("POST", "/v1/apps", { name: "other", origin: origin.url })).status).toBe(201);
    expect((await admin("POST", "/v1/apps", { name: "paused", origin: origin.url, state: "Paused" })).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    rmSync(persistTo, { recursive: true, force: true });
  });

  describe("FunctionGraph: asyncInvokeFunction with the official SDK", () => {
    const URN = (fn: string) => `urn:fss:cn-north-4:0123456789abcdef:function:default:${fn}:latest`;

    function client(keys: Keys): FunctionGraphClient {
      const credentials = new BasicCredentials()
        .withAk(keys.accessKey)
        .withSk(keys.secretKey)
        .withProjectId("0123456789abcdef");
      return FunctionGraphClient.newBuilder().withCredential(credentials).withEndpoint(`http://${control()}`).build();
    }

    /** Exactly seed 002's call: a body of `{"body": "{\"k\":\"v\"}"}`. */
    function invoke(keys: Keys, fn: string) {
      const request = new AsyncInvokeFunctionRequest();
      request.withFunctionUrn(URN(fn));
      // The seed's value is a string; the SDK's typings say object, its code sends any JSON.
      request.withBody({ body: '{"k":"v"}' } as unknown as Record<string, object>);
      // The SDK resolves with the response's JSON fields (and httpStatusCode), not a class instance.
      return client(keys).asyncInvokeFunction(request) as unknown as Promise<{
        httpStatusCode: number;
        request_id?: string;
      }>;
    }

    /** The SDK's error for a refused call: status, FunctionGraph error code and message. */
    async function refusal(
      call: Promise<unknown>,
    ): Promise<{ httpStatusCode: number; errorCode: string; errorMsg: string; requestId: string }> {
      try {
        await call;
      } catch (error) {
        return error as { httpStatusCode: number; errorCode: string; errorMsg: string; requestId: string };
      }
      throw new Error("the call was accepted");
    }

    it("answers 202 with a request_id that GET /v1/task/<id> resolves to the delivered task", async () => {
      const response = await invoke(E2E_KEYS, "fgdemo");
      expect(response.httpStatusCode).toBe(202);
      expect(response.request_id).toMatch(/^[0-9a-z]+$/);
      const task = await waitForState(response.request_id!, 10);
      expect(task.app).toBe("fgdemo");
      expect(task.request).toMatchObject({ method: "POST", path: "/fg/invoke", raw_query: "?source=functiongraph" });
      const delivered = origin.received.filter((r) => r.headers["asyncgate-task-id"] === task.id);
      expect(delivered).toHaveLength(1);
      expect(delivered[0]!.url).toBe("/fg/invoke?source=functiongraph");
      expect(delivered[0]!.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(Buffer.from(delivered[0]!.body, "base64").toString("utf8"))).toEqual({ body: '{"k":"v"}' });
      // The SDK's credentials are not part of the event the origin receives.
      expect(delivered[0]!.headers["x-sdk-date"]).toBeUndefined();
      expect(delivered[0]!.headers["authorization"]).toBeUndefined();
    });

    it("accepts an app key with submit, and refuses one without it or of another app with 403", async () => {
      const submitter = await createKey("fgdemo", ["submit"]);
      const accepted = await invoke(submitter, "fgdemo");
      expect(accepted.httpStatusCode).toBe(202);
      await waitForState(accepted.request_id!, 10);

      const reader = await createKey("fgdemo", ["query"]);
      expect(await refusal(invoke(reader, "fgdemo"))).toMatchObject({ httpStatusCode: 403, errorCode: "FSS.0403" });
      expect(await refusal(invoke(submitter, "other"))).toMatchObject({ httpStatusCode: 403, errorCode: "FSS.0403" });
    });

    it("a wrong secret key makes the SDK raise 401 with the FunctionGraph error shape", async () => {
      const error = await refusal(invoke({ accessKey: E2E_KEYS.accessKey, secretKey: "not-the-secret" }, "fgdemo"));
      expect(error).toMatchObject({ httpStatusCode: 401, errorCode: "FSS.0401" });
      expect(error.errorMsg).toMatch(/signature/);
      expect(error.requestId).toMatch(/^[0-9a-f]{16}$/);
      const forged = await refusal(invoke({ accessKey: "fgdemo.0123456789abcdef01234567", secretKey: "x" }, "fgdemo"));
      expect(forged).toMatchObject({ httpStatusCode: 401, errorCode: "FSS.0401" });
    });

    it("an unknown function is 404 in FunctionGraph's shape", async () => {
      expect(await refusal(invoke(E2E_KEYS, "nosuchfn"))).toMatchObject({ httpStatusCode: 404, errorCode: "FSS.0404" });
    });

    it("an IAM X-Auth-Token is refused with 401 saying that AK/SK signing is required", async () => {
      const path = `/v2/0123456789abcdef/fgs/functions/${URN("fgdemo")}/invocations-async`;
      const answer = await new Promise<{ status: number; body: string; type: string | undefined }>(
        (resolve, reject) => {
          const req = httpRequest(
            {
              host: "127.0.0.1",
              port,
              method: "POST",
              path,
              headers: { host: control(), "content-type": "application/json", "x-auth-token": "MIIZ-token" },
            },
            (res) => {
              let body = "";
              res.on("data", (chunk: Buffer) => (body += chunk.toString()));
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body, type: res.headers["content-type"] }));
            },
          );
          req.on("error", reject);
          req.end('{"k":"v"}');
        },
      );
      expect(answer.status).toBe(401);
      expect(answer.type).toBe("application/json");
      const body = JSON.parse(answer.body) as { error_code: string; error_msg: string };
      expect(body.error_code).toBe("FSS.0401");
      expect(body.error_msg).toMatch(/AK\/SK/);
    });
  });

  describe("Tencent CI: cos.request on /docqueue with the official SDK", () => {
    interface Queue {
      QueueId: string;
      Name: string;
      State: string;
      NotifyConfig: { Url: string; Type: string; Event: string; State: string };
      CreateTime: string;
      UpdateTime: string;
    }
    interface DescribeResponse {
      RequestId: string;
      TotalCount: string;
      PageNumber: string;
      PageSize: string;
      QueueList?: Queue | Queue[];
      NonExistPIDs?: string | string[];
    }
    const list = <T>(value: T | T[] | undefined): T[] =>
      value === undefined ? [] : Array.isArray(value) ? value : [value];

    const cosFor = (keys: Keys) => new COS({ SecretId: keys.accessKey, SecretKey: keys.secretKey });

    /** Seed 001's describeDocProcessQueue, pointed at the gateway. */
    function describeQueues(
      keys: Keys,
      query: { queueIds?: string; state?: string; pageNumber?: string; pageSize?: string },
    ) {
      const key = "docqueue";
      return new Promise<DescribeResponse>((resolve, reject) => {
        cosFor(keys).request(
          {
            Method: "GET",
            Key: key,
            Url: `http://${control()}/${key}`,
            Query: {
              queueIds: query.queueIds ?? "",
              state: query.state ?? "",
              pageNumber: query.pageNumber ?? "",
              pageSize: query.pageSize ?? "",
            },
          },
          (err, data) => (err ? reject(err) : resolve((data as unknown as { Response: DescribeResponse }).Response)),
        );
      });
    }

    /** Seed 001's updateProcessQueue, pointed at the gateway. */
    function updateQueue(keys: Keys, queueId: string, state: string, notify: { Url: string; State: string }) {
      const key = `docqueue/${queueId}`;
      const body = COS.util.json2xml({
        Request: {
          Name: queueId,
          QueueID: queueId,
          State: state,
          NotifyConfig: { Url: notify.Url, Type: "Url", Event: "TaskFinish", State: notify.State },
        },
      });
      return new Promise<{ RequestId: string; Queue: Queue }>((resolve, reject) => {
        cosFor(keys).request(
          { Method: "PUT", Key: key, Url: `http://${control()}/${key}`, Body: body, ContentType: "application/xml" },
          (err, data) =>
            err
              ? reject(err)
              : resolve((data as unknown as { Response: { RequestId: string; Queue: Queue } }).Response),
        );
      });
    }

    async function cosRefusal(call: Promise<unknown>): Promise<{ statusCode: number; code: string; message: string }> {
      try {
        await call;
      } catch (error) {
        return error as { statusCode: number; code: string; message: string };
      }
      throw new Error("the call was accepted");
    }

    it("describes queues with each filter: none, state, queueIds (with NonExistPIDs), pageNumber and pageSize", async () => {
      const all = await describeQueues(E2E_KEYS, {});
      expect(Number(all.TotalCount)).toBe(3);
      expect(list(all.QueueList).map((queue) => queue.QueueId)).toEqual(["fgdemo", "other", "paused"]);
      expect(all.PageNumber).toBe("1");
      expect(all.PageSize).toBe("10");
      const first = list(all.QueueList)[0]!;
      expect(first).toMatchObject({
        Name: "fgdemo",
        State: "Active",
        NotifyConfig: { Url: "", Type: "Url", Event: "TaskFinish", State: "Off" },
      });
      expect(first.CreateTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$/);

      const active = await describeQueues(E2E_KEYS, { state: "Active" });
      expect(list(active.QueueList).map((queue) => queue.QueueId)).toEqual(["fgdemo", "other"]);
      const paused = await describeQueues(E2E_KEYS, { state: "Paused" });
      expect(list(paused.QueueList).map((queue) => queue.QueueId)).toEqual(["paused"]);

      const byId = await describeQueues(E2E_KEYS, { queueIds: "other,ghost" });
      expect(list(byId.QueueList).map((queue) => queue.QueueId)).toEqual(["other"]);
      expect(list(byId.NonExistPIDs)).toEqual(["ghost"]);
      expect(byId.TotalCount).toBe("1");

      const second = await describeQueues(E2E_KEYS, { pageNumber: "2", pageSize: "2" });
      expect(second).toMatchObject({ TotalCount: "3", PageNumber: "2", PageSize: "2" });
      expect(list(second.QueueList).map((queue) => queue.QueueId)).toEqual(["paused"]);
    });

    it("updates State and NotifyConfig, and the change is visible through GET /v1/apps/<name>", async () => {
      const updated = await updateQueue(E2E_KEYS, "other", "Paused", { Url: `${origin.url}/notify`, State: "On" });
      expect(updated.Queue).toMatchObject({
        QueueId: "other",
        State: "Paused",
        NotifyConfig: { Url: `${origin.url}/notify`, State: "On" },
      });
      const seen = (await admin("GET", "/v1/apps/other")).json<{
        state: string;
        notify: { url: string; state: string; events: string[] };
      }>();
      expect(seen.state).toBe("Paused");
      expect(seen.notify).toEqual({ url: `${origin.url}/notify`, state: "On", events: ["TaskFinish"] });

      await updateQueue(E2E_KEYS, "other", "Active", { Url: "", State: "Off" });
      const restored = (await admin("GET", "/v1/apps/other")).json<{
        state: string;
        notify: { url: string | null; state: string };
      }>();
      expect(restored).toMatchObject({ state: "Active", notify: { url: null, state: "Off" } });
    });

    it("an app key with manage sees and updates its own queue only", async () => {
      const manager = await createKey("paused", ["manage"]);
      const seen = await describeQueues(manager, {});
      expect(list(seen.QueueList).map((queue) => queue.QueueId)).toEqual(["paused"]);
      const updated = await updateQueue(manager, "paused", "Paused", { Url: "", State: "Off" });
      expect(updated.Queue.QueueId).toBe("paused");
      expect(await cosRefusal(updateQueue(manager, "other", "Paused", { Url: "", State: "Off" }))).toMatchObject({
        statusCode: 404,
        code: "NoSuchResource",
      });
      const submitter = await createKey("paused", ["submit"]);
      expect(await cosRefusal(describeQueues(submitter, {}))).toMatchObject({ statusCode: 403, code: "AccessDenied" });
    });

    it("a wrong SecretKey is refused with Tencent's XML error and 403", async () => {
      const error = await cosRefusal(
        describeQueues({ accessKey: E2E_KEYS.accessKey, secretKey: "not-the-secret" }, {}),
      );
      expect(error).toMatchObject({ statusCode: 403, code: "SignatureDoesNotMatch" });
      const update = await cosRefusal(
        updateQueue({ accessKey: E2E_KEYS.accessKey, secretKey: "not-the-secret" }, "other", "Paused", {
          Url: "",
          State: "Off",
        }),
      );
      expect(update).toMatchObject({ statusCode: 403, code: "SignatureDoesNotMatch" });
      expect((await admin("GET", "/v1/apps/other")).json<{ state: string }>().state).toBe("Active");
    });

    it("a malformed update is a 400 XML error that changes nothing", async () => {
      const error = await cosRefusal(updateQueue(E2E_KEYS, "other", "Sleeping", { Url: "", State: "Off" }));
      expect(error).toMatchObject({ statusCode: 400, code: "InvalidArgument" });
      expect((await admin("GET", "/v1/apps/other")).json<{ state: string }>().state).toBe("Active");
    });
  });
});
