/**
 * The gateway-wide rules an app config and a callback URL are checked against: whether private
 * origins are allowed (local development) and which hosts are the gateway's own.
 */
export interface ConfigRules {
  /** Accept loopback and private-network origins (local development). */
  allowPrivateOrigins: boolean;
  /**
   * The gateway's own hosts, never a target (a task would submit itself, forever): app hosts
   * end with `appHostSuffix`; `controlHosts` are `host[:port]` values of the control API.
   */
  gateway: { appHostSuffix: string; controlHosts: string[] };
}

/** The Worker's vars the rules come from (a structural type: the console's build has no Env). */
interface GatewayVars {
  ALLOW_PRIVATE_ORIGINS: string;
  APP_HOST_SUFFIX: string;
  CONTROL_HOST: string;
}

/** How app configs and callback URLs are checked, given the host the request came to. */
export const configRules = (env: GatewayVars, requestHost: string): ConfigRules => ({
  allowPrivateOrigins: env.ALLOW_PRIVATE_ORIGINS === "true",
  gateway: { appHostSuffix: env.APP_HOST_SUFFIX, controlHosts: [env.CONTROL_HOST, requestHost] },
});
