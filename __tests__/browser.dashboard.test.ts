// The dashboard in Chromium, served by a live hub: it opens on the busiest namespace, follows
// ?ns= and clicks on a namespace row, shows rooms with their members' presence, draws the
// traffic chart from /metrics, counts every requeue and drop click while it refreshes four
// times a second, drops several letters at once, and says "unreachable" when the hub stops.
import { SignJWT } from "jose";
import type { Browser, Page } from "playwright-core";
import { launchChromium, watchErrors } from "./support/browser.js";
import { settle, startHub, type TestClient, type TestContext } from "./support/hub.js";

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

/** Makes `n` dead letters in /caps for `clientId` (delivered once, never acked), and lets it go. */
async function deadLetters(ctx: TestContext, clientId: string, n: number): Promise<string[]> {
  const consumer = await ctx.client("/caps", { clientId });
  await consumer.request("subscribe", { event: "order" });
  const shop = await ctx.client("/caps", { clientId: `${clientId}-shop` });
  for (let i = 0; i < n; i++) await shop.request("order", { n: i });
  let ids: string[] = [];
  const deadline = Date.now() + 10_000;
  while (ids.length < n && Date.now() < deadline) {
    await settle(50);
    ids = (await ctx.hub.store.listDead("/caps", { limit: 100 })).items
      .filter((d) => d.queue === `c:${clientId}`)
      .map((d) => d.messageId);
  }
  expect(ids).toHaveLength(n);
  // Gone, so requeued letters wait in its queue instead of dying again.
  consumer.close();
  return ids;
}

async function open(page: Page, url: string) {
  await page.goto(url);
  await page.waitForSelector("#status[data-state=healthy]", { timeout: 10_000 });
}

test("namespaces: the busiest by default, ?ns= and a click choose one; rooms show their members' presence; the chart draws", async () => {
  const ctx = await startHub();
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    const orders: TestClient[] = [];
    for (const id of ["o-1", "o-2"]) orders.push(await ctx.client("/orders", { clientId: id }));
    const caps = await ctx.client("/caps", { clientId: "caps-driver" });
    await caps.request("subscribe", { event: "pickup" });
    const vendor = await ctx.client("/caps", { clientId: "caps-vendor" });
    for (let i = 0; i < 3; i++) await vendor.request("pickup", { i });
    await ctx.hub.store.joinRoom("/caps", "drivers", "caps-driver");
    await ctx.hub.store.joinRoom("/caps", "drivers", "gone-driver");

    // /caps holds the most pending messages: it is shown first.
    await open(page, `${ctx.url}/dashboard/?refresh=250`);
    await page.waitForFunction(() => document.querySelector("#ns")?.textContent === "/caps");
    expect(new URL(page.url()).searchParams.get("ns")).toBe("/caps");
    await page.waitForSelector("#namespaces tr.selected[data-key='/caps']");
    await page.waitForSelector("#queues tr[data-key='c:caps-driver']");

    // Rooms: click one, see who of its members is connected.
    await page.click("#rooms tr[data-key=drivers]");
    await page.waitForSelector("#members tr[data-key=caps-driver] td.online");
    await page.waitForSelector("#members tr[data-key=gone-driver] td.offline");

    // A click on a namespace row shows that namespace.
    await page.click("#namespaces tr[data-key='/orders']");
    await page.waitForFunction(() => document.querySelector("#ns")?.textContent === "/orders");
    await page.waitForSelector("#clients tr[data-key] >> text=o-2");
    expect(new URL(page.url()).searchParams.get("ns")).toBe("/orders");

    // ?ns= picks one from the start.
    await open(page, `${ctx.url}/dashboard/?ns=/caps&refresh=250`);
    await page.waitForSelector("#clients tr[data-key] >> text=caps-vendor");
    expect(await page.textContent("#ns")).toBe("/caps");

    // Throughput from /metrics: publishes while the page watches make the line.
    for (let i = 0; i < 5; i++) {
      await vendor.request("pickup", { more: i });
      await settle(150);
    }
    await page.waitForSelector("#chart polyline.published");
    expect(errors).toEqual([]);
  } finally {
    await page.close();
    await ctx.close();
  }
}, 60_000);

test("dead letters: every requeue and drop click counts while the page refreshes; several go at once", async () => {
  const ctx = await startHub({ maxDeliveries: 1, ackTimeoutMs: 100 });
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    const ids = await deadLetters(ctx, "flaky", 8);
    await open(page, `${ctx.url}/dashboard/?ns=/caps&refresh=250`);
    await page.waitForSelector(`#dead tr[data-key='${ids[7]}']`);
    // Keep the page busy: other traffic changes the views between clicks.
    const shop = await ctx.client("/caps", { clientId: "busy-shop" });
    const busy = setInterval(() => void shop.request("other", { at: Date.now() }).catch(() => {}), 50);

    const requeue = ids.slice(0, 3);
    const drop = ids.slice(3, 6);
    try {
      // A person's click: the button is held down for a moment, across a refresh or two.
      for (const id of requeue)
        await page.click(`#dead tr[data-key='${id}'] button[data-action=requeue]`, { delay: 120 });
      for (const id of drop)
        await page.click(`#dead tr[data-key='${id}'] button[data-action=drop]`, { delay: 120 });
      // The last two: ticked, then dropped together.
      for (const id of ids.slice(6)) await page.check(`#dead tr[data-key='${id}'] input.pick`);
      await page.click("#drop", { delay: 120 });
    } finally {
      clearInterval(busy);
    }

    let left = -1;
    for (const deadline = Date.now() + 5000; Date.now() < deadline && left !== 0; await settle(50)) {
      left = (await ctx.hub.store.listDead("/caps", { limit: 100 })).items.length;
    }
    expect(left).toBe(0);
    await page.waitForSelector("#dead tr.empty");
    expect(await page.textContent("#action-result")).toMatch(/^dropped 2 at/);
    // Exactly the three requeued ones are back in flaky's queue.
    const flaky = await ctx.client("/caps", { clientId: "flaky" });
    await flaky.received(3, 5000);
    await settle(200);
    expect(flaky.messages.map((m) => m.messageId).sort()).toEqual([...requeue].sort());
    expect(errors).toEqual([]);
  } finally {
    await page.close();
    await ctx.close();
  }
}, 60_000);

test('the badge says "hub unreachable" when the hub stops, and never stays green', async () => {
  const ctx = await startHub();
  const page = await browser.newPage();
  try {
    await open(page, `${ctx.url}/dashboard/?refresh=250`);
    expect(await page.textContent("#status")).toBe("healthy");
    await ctx.close();
    await page.waitForSelector("#status[data-state=unreachable]", { timeout: 10_000 });
    expect(await page.textContent("#status")).toBe("hub unreachable");
    expect(await page.isVisible("#notice")).toBe(true);
  } finally {
    await page.close();
  }
}, 60_000);

test("with HUB_SECRET the page asks for an operator token, and shows the views once given one", async () => {
  const secret = "dashboard-secret";
  const ctx = await startHub({ secret });
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    const token = await new SignJWT({ role: "operator" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ops")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    await page.goto(`${ctx.url}/dashboard/?refresh=250`);
    await page.waitForSelector("#notice:not([hidden])");
    expect(await page.textContent("#notice")).toContain("operator token");
    // The hub is up, whatever the views say.
    expect(await page.textContent("#status")).toBe("healthy");
    expect(await page.$$("#namespaces tbody tr")).toHaveLength(0);
    await page.fill("#token", token);
    await page.press("#token", "Enter");
    await page.dispatchEvent("#token", "change");
    await page.waitForSelector("#notice", { state: "hidden" });
    await page.waitForSelector("#namespaces tbody tr");
    expect(errors).toEqual([]);
  } finally {
    await page.close();
    await ctx.close();
  }
}, 60_000);
