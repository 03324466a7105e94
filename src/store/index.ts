// Picks and opens the configured store. Persistent stores load on demand, so a hub
// on the memory store never loads the SQLite addon or a Redis client.
import type { HubConfig } from "../config.js";
import { MemoryStore } from "./memory.js";
import type { QueueStore } from "./store.js";

export async function openStore(config: HubConfig): Promise<QueueStore> {
  switch (config.store) {
    case "memory":
      return new MemoryStore();
    case "sqlite": {
      const { SqliteStore } = await import("./sqlite/index.js");
      return SqliteStore.open({
        file: config.db,
        sync: config.sync,
        flushIntervalMs: config.flushMs,
        reserveBytes: config.dbReserveMb * 1024 * 1024,
      });
    }
    case "redis": {
      const { RedisStore } = await import("./redis/index.js");
      return RedisStore.connect({ url: config.redisUrl, prefix: config.redisPrefix });
    }
  }
}
