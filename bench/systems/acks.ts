// How a subscriber batches its acks, the same for every system that can ack many at once
// (queuehub's `received { messageIds }`, AMQP `basic.ack` with `multiple`, JetStream AckAll).

import { type RunPlan, SINGLES_ACK_EVERY, SINGLES_ACK_MS } from "../types.js";

/**
 * Collects deliveries to ack and hands them to `send` in groups. On queuehub's batch path (arrays
 * of deliveries) a group is what arrived in one turn of the event loop; in singles mode it is
 * {@link SINGLES_ACK_EVERY} deliveries or what arrived within {@link SINGLES_ACK_MS} ms of the
 * first pending one, as a user batching acks would write it.
 */
export function batchedAcks<T>(plan: RunPlan, send: (items: T[]) => void) {
  const singles = plan.mode === "singles";
  let pending: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  let immediate = false;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    immediate = false;
    if (pending.length === 0) return;
    const items = pending;
    pending = [];
    send(items);
  };
  return {
    add(item: T) {
      pending.push(item);
      if (!singles) {
        if (!immediate) {
          immediate = true;
          setImmediate(flush);
        }
      } else if (pending.length >= SINGLES_ACK_EVERY) flush();
      else timer ??= setTimeout(flush, SINGLES_ACK_MS);
    },
    flush,
  };
}
