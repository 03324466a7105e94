// The package's main entry, `import { createHub } from "queuehub"`: the hub (everything hub.ts
// exports: createHub, attachHub, their options and types), its settings, the stores and the wire
// types. The client library is its own entry, `queuehub/client`, which loads none of this (no
// native module, no server).

export type { LogLevel, StoreKind, SyncLevel } from "./config.js";
export { ConfigError } from "./config.js";
export * from "./hub.js";
export type { LogFields, Logger } from "./log.js";
export { OriginPolicy } from "./origins.js";
export { ERROR_CODES } from "./protocol.js";
export { openStore } from "./store/index.js";
export { RedisStore, type RedisStoreOptions } from "./store/redis/index.js";
export { SqliteStore, type SqliteStoreOptions } from "./store/sqlite/index.js";
export type * from "./store/store.js";
export { StoreError } from "./store/store.js";
