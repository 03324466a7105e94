// The package's main entry, `import { createHub } from "queuehub"`: the hub, its settings, the
// stores and the wire types. The client library is its own entry, `queuehub/client`, which loads
// none of this (no native module, no server).

export type { HubConfig, LogLevel, StoreKind, SyncLevel } from "./config.js";
export { ConfigError, defaultConfig, parseConfig } from "./config.js";
export * from "./hub.js";
export type { LogFields, Logger } from "./log.js";
export type * from "./protocol.js";
export { ERROR_CODES } from "./protocol.js";
export { openStore } from "./store/index.js";
export { MemoryStore } from "./store/memory.js";
export { RedisStore, type RedisStoreOptions } from "./store/redis.js";
export { SqliteStore, type SqliteStoreOptions } from "./store/sqlite.js";
export type * from "./store/store.js";
export { StoreError } from "./store/store.js";
