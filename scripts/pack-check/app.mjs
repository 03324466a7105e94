// Runs inside the new project pack-check.mjs makes: the installed package, used from outside.
// Hubs from createHub (memory store, the default SQLite store) and one attached with attachHub
// to a host's own Socket.IO server; the client library publishes and receives on each.
import { createServer } from "node:http";
import { attachHub, createHub, MemoryStore } from "queuehub";
import { HubClient } from "queuehub/client";
import { Server } from "socket.io";
import { io } from "socket.io-client";

const settings = { port: 0, host: "127.0.0.1", logLevel: "silent" };

/** A vendor subscribes, a driver publishes: the vendor's handler gets the payload. */
async function roundTrip(what, url) {
  const vendor = new HubClient({ url, namespace: "/caps", clientId: "vendor" });
  const driver = new HubClient({ url, namespace: "/caps", clientId: "driver" });
  try {
    await Promise.all([vendor.connect(), driver.connect()]);
    let deliver;
    const received = new Promise((resolve) => {
      deliver = resolve;
    });
    await vendor.subscribe("delivered", (payload) => deliver(payload));
    await driver.publish("delivered", { orderId: "o-1" });
    const payload = await received;
    if (payload?.orderId !== "o-1") throw new Error(`${what}: received ${JSON.stringify(payload)}`);
  } finally {
    vendor.close();
    driver.close();
  }
}

async function created(what, options) {
  const hub = await createHub({ ...settings, ...options });
  try {
    await roundTrip(what, hub.url);
  } finally {
    await hub.close();
  }
}

/** The host's own event on `/` still answers; the queue serves `/caps`. */
async function attached() {
  const http = createServer();
  const host = new Server(http, { maxHttpBufferSize: 29e6 });
  host.on("connection", (socket) => socket.on("hello", (name, ack) => ack(`hi ${name}`)));
  const queue = await attachHub(host, { ...settings, namespaces: ["/caps"], store: "memory" });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${http.address().port}`;
  try {
    const socket = io(url, { transports: ["websocket"] });
    const answer = await socket.timeout(10_000).emitWithAck("hello", "pack-check");
    socket.close();
    if (answer !== "hi pack-check") throw new Error(`attachHub: the host's own event answered ${answer}`);
    await roundTrip("attachHub", url);
  } finally {
    await queue.close();
    await host.close();
  }
}

const timeout = setTimeout(() => {
  console.error("app.mjs: not done within 60 s");
  process.exit(1);
}, 60_000);
await created("createHub, memory store", { store: "memory", queueStore: new MemoryStore() });
await created("createHub, SQLite store", { store: "sqlite", db: process.env.CHECK_DB });
await attached();
clearTimeout(timeout);
