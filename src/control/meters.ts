/**
 * `GET /v1/meters?apps=a,b` (admin only): what the gateway has spent since its isolates started,
 * counted where it is spent (src/shared/meters.ts): the Worker's isolate plus the objects of the
 * apps named, each isolate once. A measuring tool (the benchmark prices a task with it): exact
 * locally, where one process runs everything; per isolate, so partial, when deployed.
 */
import type { IRequest } from "itty-router";
import { queryParam, type ControlContext } from "./context";
import { parseAppIds } from "./apps";
import { verifiedPrincipal } from "./callers";
import { authorize } from "../auth/authenticate";
import { jsonResponse } from "../http/errors";
import { snapshot, sumSnapshots } from "../shared/meters";
import { appQueue } from "../app/stubs";

export async function getMeters(request: IRequest, context: ControlContext): Promise<Response> {
  authorize(await verifiedPrincipal(context), "manage", null);
  const apps = parseAppIds(queryParam(request.query, "apps"), "apps") ?? [];
  const snapshots = [snapshot(), ...(await Promise.all(apps.map((app) => appQueue(context.env, app).meters())))];
  const body = { meters: sumSnapshots(snapshots), isolates: new Set(snapshots.map((item) => item.isolate)).size, apps };
  return jsonResponse(JSON.stringify(body), 200, context.reqId);
}
