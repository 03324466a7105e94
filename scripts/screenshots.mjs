// Takes the README's screenshots (docs/dashboard.png, docs/chat.png) in Debian's Chromium, from a
// hub with some traffic: `npm run build && node scripts/screenshots.mjs` (about a minute, for
// the dashboard's chart to fill). Look at the pictures before committing them.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { createHub, MemoryStore } from "../dist/index.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DOCS = `${ROOT}docs`;
const only = process.argv.slice(2);
const wanted = (name) => only.length === 0 || only.includes(name);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

mkdirSync(DOCS, { recursive: true });
const hub = await createHub({
  port: 0,
  host: "127.0.0.1",
  logLevel: "silent",
  store: "memory",
  queueStore: new MemoryStore(),
  maxDeliveries: 3,
  ackTimeoutMs: 400,
});
const sockets = [];
/** A connected socket.io client of the hub; `acking` ones ack every delivery. */
async function connect(ns, clientId, acking = true) {
  const socket = io(`${hub.url}${ns}`, { auth: { clientId, batch: true }, transports: ["websocket"] });
  sockets.push(socket);
  if (acking) {
    socket.on("deliveries", (messages) =>
      socket.emit("received", { messageIds: messages.map((m) => m.messageId) }),
    );
  }
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});

try {
  if (wanted("dashboard")) await dashboard();
  if (wanted("chat")) await chat();
} finally {
  await browser.close();
  for (const socket of sockets) socket.close();
  await hub.close();
}

async function dashboard() {
  // /caps: two vendors, two drivers sharing the pickups, a driver whose handler keeps failing.
  const vendors = await Promise.all(["acme-widgets", "flowers-r-us"].map((id) => connect("/caps", id)));
  for (const id of ["driver-1", "driver-2"]) {
    const driver = await connect("/caps", id);
    await driver.emitWithAck("subscribe", { event: "pickup", group: "drivers" });
  }
  const broken = await connect("/caps", "driver-broken", false);
  await broken.emitWithAck("subscribe", { event: "delivered" });
  for (const vendor of vendors) await vendor.emitWithAck("subscribe", { event: ["in-transit", "delivered"] });
  for (const [room, members] of [
    ["drivers", ["driver-1", "driver-2", "driver-broken", "driver-3"]],
    ["vendors", ["acme-widgets", "flowers-r-us"]],
  ]) {
    for (const member of members) await hub.store.joinRoom("/caps", room, member);
  }
  // /orders: a queue that fills while its consumer is away.
  const shop = await connect("/orders", "webshop");
  await hub.store.subscribe("/orders", "billing", ["order"], null);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1580 }, deviceScaleFactor: 1 });
  await page.goto(`${hub.url}/dashboard/?ns=/caps`);
  // About a minute of traffic at a changing pace, for the chart, going on while the picture is taken.
  const started = Date.now();
  let n = 0;
  let running = true;
  const traffic = (async () => {
    while (running) {
      const vendor = vendors[n % 2];
      const store = n % 2 ? "flowers-r-us" : "acme-widgets";
      await vendor.emitWithAck("pickup", { orderId: `o-${1000 + n}`, store, customer: "Jane Doe" });
      await vendor.emitWithAck("in-transit", { orderId: `o-${1000 + n}`, store });
      if (n % 60 === 0) await vendor.emitWithAck("delivered", { orderId: `o-${1000 + n}`, store });
      if (n % 3 === 0) await shop.emitWithAck("order", { orderId: `w-${n}`, total: 42.5 });
      n++;
      const phase = ((Date.now() - started) / 20_000) * Math.PI;
      await sleep(40 + 60 * (1 + Math.sin(phase)));
    }
  })();
  await sleep(65_000);
  await page.click("#rooms tr[data-key=drivers]");
  await page.waitForSelector("#members tr[data-key=driver-3]");
  for (const row of [2, 3]) await page.check(`#dead tbody tr:nth-child(${row}) input.pick`);
  await sleep(1500);
  await page.screenshot({ path: `${DOCS}/dashboard.png`, timeout: 60_000 });
  running = false;
  await traffic;
  await page.close();
  process.stdout.write(`docs/dashboard.png (${n} orders)\n`);
}

async function chat() {
  // Linus is in the lobby but away; Ada and Grace talk, each in a browser of her own.
  await hub.store.joinRoom("/chat", "lobby", "linus");
  const person = async (name) => {
    const context = await browser.newContext({ viewport: { width: 640, height: 520 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await page.goto(`${hub.url}/examples/chat/?name=${name}`);
    await page.waitForSelector("#status[data-state=online]");
    await page.waitForSelector("#rooms li[data-room=lobby]");
    return page;
  };
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.click("#say button");
    await page.waitForSelector(`#lines li.self >> text=${text}`);
  };
  const ada = await person("ada");
  await ada.fill("#room-name", "drivers");
  await ada.click("#join button");
  await ada.waitForSelector("#rooms li[data-room=drivers]");
  await ada.click("#rooms li[data-room=lobby]");
  const grace = await person("grace");
  await ada.waitForSelector("#members li[data-member=grace].online");
  await say(ada, "Morning Grace! Did the 9:00 batch go out?");
  await say(grace, "It did, 42 orders. Two are waiting for a driver.");
  await say(ada, "Thanks, I'll ping the drivers room.");
  await say(grace, "Linus was offline all night: he'll get all of this when he's back.");
  await ada.waitForSelector("#lines li[data-from=grace] >> text=Linus was offline");
  // Meanwhile in the drivers room, from a driver's program: an unread line for Ada.
  const driver = await connect("/chat", "driver-1");
  await driver.emitWithAck("join", "drivers");
  await driver.emitWithAck("publish", {
    event: "message",
    payload: { text: "2 pickups left" },
    room: "drivers",
  });
  await ada.waitForSelector("#rooms li[data-room=drivers] .unread");
  await sleep(300);
  // Both windows side by side in one picture, composed by the browser itself.
  const shots = await Promise.all([ada, grace].map((page) => page.screenshot()));
  const frame = await browser.newPage({ viewport: { width: 1320, height: 540 }, deviceScaleFactor: 1 });
  await frame.setContent(
    `<body style="margin:0;background:#9aa1ad;display:flex;gap:20px;padding:10px">${shots
      .map((png) => `<img src="data:image/png;base64,${png.toString("base64")}" width="640" height="520">`)
      .join("")}</body>`,
  );
  await frame.screenshot({ path: `${DOCS}/chat.png` });
  await frame.close();
  await Promise.all([ada, grace].map((page) => page.context().close()));
  process.stdout.write("docs/chat.png\n");
}
