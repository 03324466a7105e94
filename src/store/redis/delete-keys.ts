import { Redis } from "ioredis";

/**
 * Deletes every key under `prefix` (SCAN + UNLINK, never FLUSHALL: the Redis may be shared):
 * for tests, benchmarks and operators retiring a prefix.
 */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    admin.disconnect();
  }
}
