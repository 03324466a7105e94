// The Redis store's Lua scripts: one file per command in ./lua (a header lists its ARGV), each
// sent with ./lua/includes/prelude.lua in front. Read once, when this module loads; ioredis
// then runs each by its SHA (EVALSHA, falling back to EVAL after a Redis restart).
import { readFileSync } from "node:fs";
import type { ClientContext, Redis, Result } from "ioredis";

/** ioredis command name → script file, named after BullMQ's: `<command>-<number of KEYS>.lua`. */
const FILES = {
  qhSubscribe: "subscribe-0.lua",
  qhUnsubscribe: "unsubscribe-0.lua",
  qhDropEvent: "drop-event-0.lua",
  qhEnqueue: "enqueue-0.lua",
  qhTrim: "trim-0.lua",
  qhClaim: "claim-0.lua",
  qhHandover: "handover-0.lua",
  qhRelease: "release-0.lua",
  qhAck: "ack-0.lua",
  qhPending: "pending-0.lua",
  qhSweep: "sweep-0.lua",
  qhJoinRoom: "join-room-0.lua",
  qhLeaveRoom: "leave-room-0.lua",
  qhNamespaces: "namespaces-0.lua",
  qhStats: "stats-0.lua",
  qhSubscriptions: "subscriptions-0.lua",
  qhRooms: "rooms-0.lua",
  qhListDead: "list-dead-0.lua",
  qhRequeueDead: "requeue-dead-0.lua",
  qhDropDead: "drop-dead-0.lua",
  qhMigrate: "migrate-0.lua",
  qhMigrateNs: "migrate-ns-0.lua",
} as const;

export type ScriptName = keyof typeof FILES;
/** A script's arguments after the key prefix (ARGV[2..]). */
export type ScriptArg = string | number;
export type ScriptReply = string | number | null | ScriptReply[];

type ScriptCommands<Context extends ClientContext> = {
  [K in ScriptName]: (prefix: string, ...args: ScriptArg[]) => Result<ScriptReply, Context>;
};

declare module "ioredis" {
  // The commands defineScripts() adds, typed for every ioredis client.
  interface RedisCommander<Context extends ClientContext = { type: "default" }>
    extends ScriptCommands<Context> {}
}

const read = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), "utf8");

const PRELUDE = read("includes/prelude.lua");
const SCRIPTS = Object.entries(FILES).map(([name, file]) => ({
  name,
  numberOfKeys: Number(/-(\d+)\.lua$/.exec(file)?.[1] ?? 0),
  lua: PRELUDE + read(file),
}));

/** Defines every script as a command of this client. */
export function defineScripts(redis: Redis): void {
  for (const { name, numberOfKeys, lua } of SCRIPTS) redis.defineCommand(name, { numberOfKeys, lua });
}
