/**
 * The import rules of src/ (`npm run check:imports`, run by `npm test`'s pretest): no cycles,
 * type-only imports included, and no import that climbs the layers the README's source map
 * states, from the bottom up:
 *   shared (and the standalone receiver)
 *   store / auth / http / config
 *   app (the app's Durable Object) / shards (its shard objects) / registry
 *   front doors / control / submit / delivery
 *   entry (src/index.ts)
 * A module imports from its own layer or a lower one. The client, CLI and console are packages
 * of their own: they may use the lower layers' pure modules, never the server's.
 */
const LOWER_THAN_BASE =
  "^src/(app/(?!store/)|registry/|front-doors/|control/|submit/|delivery/|index[.]ts$|client/|cli|console/)";
const ABOVE_APP = "^src/(front-doors/|control/|submit/|delivery/|index[.]ts$|client/|cli|console/)";
const SERVER = "^src/(app/|registry/|front-doors/|control/|submit/|delivery/|index[.]ts$)";

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "An import cycle (type-only imports count): split out what both sides need.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "shared-imports-only-shared",
      severity: "error",
      comment: "shared/ (and receiver/) is the bottom layer: it imports nothing else of src/.",
      from: { path: "^src/(shared|receiver)/" },
      to: { path: "^src/", pathNot: "^src/(shared/|receiver/|env[.]d[.]ts$)" },
    },
    {
      name: "base-does-not-climb",
      severity: "error",
      comment: "store / auth / http / config import only each other and shared/.",
      from: { path: "^src/(app/store|auth|http|config)/" },
      to: { path: LOWER_THAN_BASE },
    },
    {
      name: "app-does-not-climb",
      severity: "error",
      comment:
        "The app object, its shards and the registry import no front door, control route, submit or delivery code.",
      from: { path: "^src/(app|registry|shards)/", pathNot: "^src/app/store/" },
      to: { path: ABOVE_APP },
    },
    {
      name: "doors-do-not-climb",
      severity: "error",
      comment: "Front doors, control, submit and delivery do not import the entry or the client packages.",
      from: { path: "^src/(front-doors|control|submit|delivery)/" },
      to: { path: "^src/(index[.]ts$|client/|cli|console/)" },
    },
    {
      name: "packages-stay-off-the-server",
      severity: "error",
      comment: "The client, CLI and console run outside the Worker: they import no server module.",
      from: { path: "^src/(client|cli|console)" },
      to: { path: SERVER },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "[.]d[.]ts$" },
  },
};
