// HubClient against a live hub: messages that arrive before their handlers are kept and
// handed over in arrival order, across events.
import { HubClient } from "../src/clients/hub-client.js";
import { startHub, type TestContext, waitUntil } from "./support/hub.js";

let ctx: TestContext;
const clients: HubClient[] = [];
const client = (clientId: string) => {
  const c = new HubClient({ url: ctx.url, namespace: "/caps", clientId });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  ctx = await startHub();
});

afterAll(async () => {
  for (const c of clients) c.close();
  await ctx.close();
});

test("messages parked before subscribe([a, b]) are handled in arrival order, across events", async () => {
  const driver = client("driver");
  await driver.connect();
  const sent = ["in-transit", "delivered", "in-transit", "delivered", "in-transit", "delivered"];
  for (const [i, event] of sent.entries()) await driver.publish(event, { n: i }, { to: "vendor" });

  const vendor = client("vendor");
  let arrived = 0;
  vendor.socket.on("deliveries", (messages) => {
    arrived += messages.length;
  });
  await vendor.connect();
  // Everything has arrived before any handler exists: it is all parked.
  await waitUntil(
    () => arrived === sent.length,
    3000,
    () => `${arrived} of ${sent.length} arrived`,
  );

  const handled: string[] = [];
  await vendor.subscribe(["delivered", "in-transit"], (payload, message) => {
    handled.push(`${message.event} ${(payload as { n: number }).n}`);
  });
  await waitUntil(
    () => handled.length === sent.length,
    3000,
    () => handled.join(", "),
  );
  expect(handled).toEqual(sent.map((event, i) => `${event} ${i}`));
  // And each was acked after its handler: nothing stays pending.
  let pending = -1;
  for (let i = 0; i < 100 && pending !== 0; i++) {
    pending = await vendor.getAll();
    if (pending) await new Promise((r) => setTimeout(r, 10));
  }
  expect(pending).toBe(0);
});
