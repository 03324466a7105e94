#!/usr/bin/env node
// The CAPS vendor: publishes a fake order as `pickup` every few seconds and thanks the
// driver for each `delivered`, including those that arrived while the vendor was away
// (the hub keeps them in the vendor's queue until they are acked).
import type { Message } from "../protocol.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  closeAndExit,
  connect,
  connectionFlags,
  createClient,
  createOutput,
  fakeOrder,
  intFlag,
  isOrder,
  type Order,
  parseFlags,
  runMain,
  stopOnSignals,
  subscribeDurably,
  usageError,
} from "./cli.js";

const USAGE = `Usage: queuehub-vendor [options]      (from a clone: npm run vendor -- [options])

A CAPS vendor. Publishes a fake order as "pickup" every few seconds and prints a
thank-you for every "delivered" (and a line for every "in-transit") addressed to it.
Deliveries that arrive while it is stopped are kept by the hub and thanked on the next start.

Options:
  --store, --id <name> store name, used as the clientId (default: acme-widgets)
  --interval <ms>      time between orders (default: 3000)
  --count <n>          publish n orders, then exit once each is delivered (default: 0 = forever)
${COMMON_USAGE}

Example: npm run vendor -- --store acme-widgets --interval 2000
`;

async function main() {
  const values = parseFlags(
    {
      ...COMMON_OPTIONS,
      store: { type: "string" },
      id: { type: "string" },
      interval: { type: "string" },
      count: { type: "string" },
    },
    USAGE,
  );
  const store = values.store ?? values.id ?? "acme-widgets";
  if (values.store !== undefined && values.id !== undefined && values.store !== values.id) {
    usageError(`--store "${values.store}" and --id "${values.id}" differ; give one of them`, null);
  }
  const interval = intFlag("interval", values.interval, 3000);
  const count = intFlag("count", values.count, 0);
  const conn = connectionFlags(values, store, values.store !== undefined ? "--store" : "--id");
  const out = createOutput(`vendor ${store}`);
  const { em } = out;

  /** Orders this run published; with --count it exits once all of them are thanked. */
  const mine = new Set<string>();
  let published = 0;
  const thanked = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let done = false;

  const finishIfDone = () => {
    if (done || count === 0 || published < count) return;
    if ([...mine].some((id) => !thanked.has(id))) return;
    done = true;
    out.success(`all ${count} order(s) delivered; bye`);
    // After this handler resolves, so its ack is queued and close() flushes it.
    setImmediate(() => closeAndExit(client, 0));
  };

  const onMessage = (payload: unknown, message: Message) => {
    if (!isOrder(payload)) {
      out.warn(`ignoring a "${message.event}" message that is not an order (${message.messageId})`);
      return;
    }
    // Drivers address their reports to the store; one that broadcasts reaches every vendor.
    if (payload.store !== store) return;
    const by = message.from ?? "the hub";
    if (message.event === "in-transit") {
      out.info(`order ${em(payload.orderId)} for ${payload.customer} is on its way with ${em(by)}`);
      return;
    }
    // A repeated delivery (the driver reported twice) is acked but thanked once.
    if (thanked.has(payload.orderId)) return;
    thanked.add(payload.orderId);
    out.success(`Thank you for delivering order ${em(payload.orderId)} to ${payload.customer}, ${em(by)}!`);
    finishIfDone();
  };

  out.info(`connecting to ${conn.url}${conn.namespace} as ${em(store)}`);
  const client = createClient(conn, out);
  // Handlers are in place before connecting: what the hub kept for us streams in as soon as we are in.
  client.handle("delivered", onMessage).handle("in-transit", onMessage);
  stopOnSignals(client, out, () => {
    done = true;
    clearTimeout(timer);
    const open = [...mine].filter((id) => !thanked.has(id)).length;
    return open
      ? `${open} order(s) on the road; their thank-yous wait at the hub for the next start`
      : undefined;
  });

  await connect(client);
  // Durable: while this vendor is away, the hub keeps its reports queued, and streams them,
  // oldest first, as soon as it is back (reports addressed to it with `to` are queued anyway).
  await subscribeDurably(client, out, ["delivered", "in-transit"], onMessage);

  let next: Order | null = null;
  const publishNext = async () => {
    if (done || (count > 0 && published >= count)) return;
    // The same order (and idempotency key) is retried until the hub has stored it once.
    next ??= fakeOrder(store);
    const order = next;
    try {
      await client.publish("pickup", order, { key: order.orderId });
      next = null;
      mine.add(order.orderId);
      published++;
      out.info(
        `new order ${em(order.orderId)} for ${order.customer}, ${order.address}` +
          (count > 0 ? ` (${published}/${count})` : ""),
      );
      finishIfDone();
    } catch (err) {
      out.warn(`could not publish order ${order.orderId}: ${(err as Error).message}; retrying`);
    }
    if (!done && (count === 0 || published < count)) timer = setTimeout(() => void publishNext(), interval);
  };
  await publishNext();
}

runMain("vendor", main);
