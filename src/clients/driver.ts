#!/usr/bin/env node
// The CAPS driver: takes every `pickup` order and after a drive of --delay ms reports it
// `in-transit` and then `delivered` to the vendor that placed it, in pickup order.
// An order is acked only once both reports are stored by the hub, so a driver stopped
// mid-drive gets the order again on its next start (or another driver of its group does).
import { isValidClientId, type Message } from "../protocol.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  connect,
  connectionFlags,
  createClient,
  createOutput,
  intFlag,
  isOrder,
  type Order,
  parseFlags,
  runMain,
  sleep,
  stopOnSignals,
  subscribeDurably,
} from "./cli.js";

const USAGE = `Usage: queuehub-driver [options]      (from a clone: npm run driver -- [options])

A CAPS driver. Picks up every "pickup" order and after a drive of --delay ms
publishes "in-transit" and then "delivered" to the vendor that placed it.
An order is acked once both are stored: one not yet reported when the driver stops
is handed out again on its next start (or to another driver of its group).

Options:
  --id <name>          clientId (default: driver); give each driver its own
  --delay <ms>         time from pickup to delivery (default: 1000)
  --group <name>       share the pickups with the other drivers of this group:
                       each order goes to one of them
${COMMON_USAGE}

Example (two drivers sharing the work):
  npm run driver -- --group drivers --id driver-1
  npm run driver -- --group drivers --id driver-2
`;

async function main() {
  const values = parseFlags(
    { ...COMMON_OPTIONS, id: { type: "string" }, delay: { type: "string" }, group: { type: "string" } },
    USAGE,
  );
  const id = values.id ?? "driver";
  const delay = intFlag("delay", values.delay, 1000);
  const group = values.group;
  const conn = connectionFlags(values, id);
  const out = createOutput(`driver ${id}`);
  const { em } = out;

  /** Orders taken and not yet reported, by messageId: a redelivery joins the drive under way. */
  const onTheRoad = new Map<string, Promise<void>>();
  /** Reports go out one order at a time, in pickup order, so each vendor's thank-yous follow its orders. */
  let reports: Promise<void> = Promise.resolve();

  const drive = async (order: Order, message: Message) => {
    const again = message.deliveries > 1 ? ` (delivery #${message.deliveries})` : "";
    out.info(`picking up order ${em(order.orderId)} from ${em(order.store)} for ${order.customer}${again}`);
    // Drives overlap (a backlog is not worked off one by one, past the hub's ack timeout);
    // they all take --delay, so they end in pickup order.
    await sleep(delay);
    const report = reports.then(async () => {
      // Keys make a repeated report (after a crash before the ack) a no-op at the hub.
      await client.publish("in-transit", order, { to: order.store, key: `${order.orderId}:in-transit` });
      out.info(`order ${em(order.orderId)} in transit to ${order.address}`);
      await client.publish("delivered", order, { to: order.store, key: `${order.orderId}:delivered` });
      out.success(`delivered order ${em(order.orderId)} to ${order.customer} (${order.store})`);
    });
    reports = report.catch(() => {});
    await report;
  };

  // Acked when it resolves, so an order is acked once both reports are stored by the hub.
  const onPickup = (payload: unknown, message: Message) => {
    // Acked and skipped: an order we cannot report to its store would come back forever.
    if (!isOrder(payload) || !isValidClientId(payload.store)) {
      const text = String(JSON.stringify(payload)).slice(0, 200);
      out.warn(`skipping a pickup that is not an order (${message.messageId}): ${text}`);
      return;
    }
    const underWay = onTheRoad.get(message.messageId);
    if (underWay) return underWay;
    const tracked = drive(payload, message)
      .catch((err: Error) => {
        // Reported by the client's error listener; unacked, the order comes back after the ack timeout.
        throw new Error(`could not report order ${payload.orderId}: ${err.message}; it will come back`);
      })
      .finally(() => onTheRoad.delete(message.messageId));
    onTheRoad.set(message.messageId, tracked);
    return tracked;
  };

  out.info(`connecting to ${conn.url}${conn.namespace} as ${em(id)}${group ? ` in group ${em(group)}` : ""}`);
  const client = createClient(conn, out);
  // The handler is in place before connecting: what the hub kept for us streams in as soon as we are in.
  client.handle("pickup", onPickup);
  stopOnSignals(client, out, () =>
    onTheRoad.size
      ? `${onTheRoad.size} order(s) not delivered; the hub hands them out again (unacked)`
      : undefined,
  );
  await connect(client);
  await subscribeDurably(client, out, "pickup", onPickup, group ? { group } : {});
  out.info(`waiting for pickups${group ? ` (shared with group ${em(group)})` : ""}`);
}

runMain("driver", main);
