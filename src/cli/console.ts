/** `asyncgate console`: the web console's URL, signed in with the keys. */
import { endpointOf, keysOf, type Command } from "./context";

export const consoleCommands: Record<string, Command> = {
  console: {
    usage: "asyncgate console",
    summary: "print the web console's URL, signed in with these keys (they stay in the URL fragment)",
    args: [0, 0],
    examples: ["asyncgate console", 'xdg-open "$(asyncgate console)"'],
    async run({ env, out }) {
      const { accessKey, secretKey } = keysOf(env);
      out(
        `${new URL("/console", endpointOf(env))}#ak=${encodeURIComponent(accessKey)}&sk=${encodeURIComponent(secretKey)}`,
      );
      return 0;
    },
  },
};
