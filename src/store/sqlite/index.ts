// The SQLite store, the default: one file on local disk.
export { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
export { SQL } from "./statements.js";
