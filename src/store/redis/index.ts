// The Redis store, for a cluster of hubs over one Redis.
export { deleteKeysWithPrefix } from "./delete-keys.js";
export { RedisStore, type RedisStoreOptions } from "./redis-store.js";
