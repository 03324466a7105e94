// Runs inside the new project pack-check.mjs makes: the installed package, used from outside.
// A hub from createHub on the memory store and on the default SQLite store, and the client
// library: publish and receive over a real connection.
import { createHub, defaultConfig, MemoryStore } from "queuehub";
import { HubClient } from "queuehub/client";

async function roundTrip(config, options) {
  const hub = await createHub(config, options);
  const vendor = new HubClient({ url: hub.url, namespace: "/caps", clientId: "vendor" });
  const driver = new HubClient({ url: hub.url, namespace: "/caps", clientId: "driver" });
  try {
    await Promise.all([vendor.connect(), driver.connect()]);
    let deliver;
    const received = new Promise((resolve) => {
      deliver = resolve;
    });
    await vendor.subscribe("delivered", (payload) => deliver(payload));
    await driver.publish("delivered", { orderId: "o-1" });
    const payload = await received;
    if (payload?.orderId !== "o-1") throw new Error(`${config.store}: received ${JSON.stringify(payload)}`);
  } finally {
    vendor.close();
    driver.close();
    await hub.close();
  }
}

const base = { port: 0, host: "127.0.0.1", logLevel: "silent" };
const timeout = setTimeout(() => {
  console.error("check.mjs: no delivery within 30 s");
  process.exit(1);
}, 30_000);
await roundTrip(defaultConfig({ ...base, store: "memory" }), { store: new MemoryStore() });
await roundTrip(defaultConfig({ ...base, store: "sqlite", db: process.env.CHECK_DB }));
clearTimeout(timeout);
