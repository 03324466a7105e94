// Message ids: UUIDv7, time-ordered and monotonic within this process.
// uuid's v7() draws fresh random bytes on every call (~2 µs, see LIMITS.md); we feed it
// slices of one pooled buffer and keep the (msecs, seq) state ourselves so ids still sort.
import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

const POOL_IDS = 1024;
const pool = new Uint8Array(16 * POOL_IDS);
let poolIndex = POOL_IDS;
let lastMsecs = -1;
let seq = 0;

export function newMessageId(now = Date.now()): string {
  if (poolIndex === POOL_IDS) {
    randomFillSync(pool);
    poolIndex = 0;
  }
  const random = pool.subarray(poolIndex * 16, ++poolIndex * 16);
  if (now > lastMsecs) {
    lastMsecs = now;
    // 31 random bits leave room to count up within one millisecond.
    seq = ((random[6] ?? 0) & 0x3f) << 24;
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMsecs++;
  }
  return v7({ random, msecs: lastMsecs, seq });
}
