// Protected open mode, as Redis's protected mode: without a secret anyone who reaches the hub can
// take any clientId, so an open hub listens on loopback only unless told otherwise (HUB_INSECURE=1).
// One decision, made before listening: which address, which mode, and why, for the start-up line.

import { isLoopback } from "./address.js";
import { ConfigError, type HubConfig } from "./config.js";

export type Mode = "tokens" | "open" | "open-insecure";

export interface Exposure {
  mode: Mode;
  /** The address to listen on. */
  host: string;
  /** The start-up line: the mode and why. */
  why: string;
}

/** Where the hub listens and in which mode; an open hub asked to listen beyond loopback without HUB_INSECURE is refused. */
export function exposure(config: Pick<HubConfig, "host" | "secret" | "insecure">): Exposure {
  if (config.secret !== null) {
    const host = config.host ?? "0.0.0.0";
    return {
      mode: "tokens",
      host,
      why: `token mode (HUB_SECRET is set): every connection needs a JWT whose sub is its clientId, the operator views a token with role "operator"; listening on ${host}`,
    };
  }
  const host = config.host ?? "127.0.0.1";
  if (isLoopback(host)) {
    return {
      mode: "open",
      host,
      why: `open mode (no HUB_SECRET): any client may use any clientId, so the hub listens on loopback only (${host}); set HUB_SECRET to listen on other addresses`,
    };
  }
  if (!config.insecure) {
    throw new ConfigError(
      `HUB_HOST=${host} would expose an open hub: without HUB_SECRET anyone who can reach it can read, ack and drop any client's messages. ` +
        "Set HUB_SECRET (clients then connect with tokens: npm run token -- --help), " +
        "or set HUB_INSECURE=1 if this network is yours alone, or leave HUB_HOST unset to listen on loopback only",
    );
  }
  return {
    mode: "open-insecure",
    host,
    why: `open mode, exposed (HUB_INSECURE=1): no HUB_SECRET and listening on ${host}, so anyone who can reach this port may use any clientId`,
  };
}
