/** `asyncgate keys …`: an app's access keys (create, list, revoke). */
import type { Permission } from "../client/index";
import { UsageError, json, string, type Command } from "./context";

export const keysCommands: Record<string, Command> = {
  "keys create": {
    usage: "asyncgate keys create <app> --permissions submit,query,subscribe,manage",
    summary: "a new access key; prints its secret_key (shown once)",
    options: {
      permissions: {
        type: "string",
        value: "submit,query,subscribe,manage",
        description: "what the key may do, a comma list (required)",
      },
    },
    args: [1, 1],
    examples: ["asyncgate keys create shop --permissions submit,query"],
    async run({ values, args, client, out }) {
      const permissions = string(values, "permissions")
        ?.split(",")
        .map((permission) => permission.trim())
        .filter(Boolean);
      if (!permissions?.length)
        throw new UsageError("--permissions is required: a comma list of submit, query, subscribe, manage");
      out(json(await client().keys.create(args[0]!, permissions as Permission[])));
      return 0;
    },
  },
  "keys list": {
    usage: "asyncgate keys list <app>",
    summary: "an app's access keys (never their secrets)",
    args: [1, 1],
    examples: ["asyncgate keys list shop"],
    async run({ args, client, out }) {
      out(json(await client().keys.list(args[0]!)));
      return 0;
    },
  },
  "keys revoke": {
    usage: "asyncgate keys revoke <app> <access key>",
    summary: "revoke a key: it fails from the next request on",
    args: [2, 2],
    examples: ["asyncgate keys revoke shop shop.5f2b9c0e41d7a3b8"],
    async run({ args, client, out }) {
      out(json(await client().keys.revoke(args[0]!, args[1]!)));
      return 0;
    },
  },
};
