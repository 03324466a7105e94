// The chat example in Chromium, as two people use it: the page comes from a second origin (a
// static server on port 0) and talks to the hub on another, over Socket.IO's default transports.
// Also the served Socket.IO client, and a page from an origin the hub does not list.
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import {
  BLANK,
  launchChromium,
  REBOUND_HOST,
  type StaticSite,
  serveFolder,
  watchErrors,
} from "./support/browser.js";
import { settle, startHub, type TestContext } from "./support/hub.js";
import { ROOT } from "./support/process.js";

let browser: Browser;
let site: StaticSite;
let ctx: TestContext;
/** Engine.IO connections the hub accepted, with the transport each started on and is on now. */
const engines: { first: string; conn: { transport: { name: string } } }[] = [];

beforeAll(async () => {
  [browser, site] = await Promise.all([launchChromium(), serveFolder(join(ROOT, "examples", "chat"))]);
  ctx = await startHub({ corsOrigins: [site.origin] });
  ctx.hub.io.engine.on("connection", (conn: { transport: { name: string } }) =>
    engines.push({ first: conn.transport.name, conn }),
  );
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await ctx?.close();
  await site?.close();
});

interface Person {
  context: BrowserContext;
  page: Page;
  errors: string[];
}
const people: Person[] = [];
afterEach(async () => {
  for (const p of people.splice(0)) await p.context.close();
});

/** Someone opens the chat in a browser of their own (own storage) and enters under `name`. */
async function open(name: string, context?: BrowserContext): Promise<Person> {
  const ctxt = context ?? (await browser.newContext());
  const page = await ctxt.newPage();
  const errors = watchErrors(page);
  const person = { context: ctxt, page, errors };
  people.push(person);
  await page.goto(`${site.origin}/?hub=${encodeURIComponent(ctx.url)}`);
  await page.fill("#name", name);
  await page.click("#enter button");
  await page.waitForSelector("#status[data-state=online]", { timeout: 15_000 });
  await page.waitForSelector("#rooms li[data-room=lobby]");
  return person;
}

async function say(p: Person, text: string) {
  await p.page.fill("#text", text);
  await p.page.click("#say button");
  await p.page.waitForSelector(`#lines li.self >> text=${text}`);
}

/** The chat lines a page shows: "from: text (source)", in order. */
function lines(p: Person): Promise<string[]> {
  return p.page.$$eval("#lines li.line", (items) =>
    items.map((li) => {
      const el = li as HTMLElement;
      return `${el.dataset.from}: ${el.querySelector(".text")?.textContent} (${el.dataset.source})`;
    }),
  );
}

async function linesUntil(p: Person, n: number): Promise<string[]> {
  await p.page.waitForFunction((count) => document.querySelectorAll("#lines li.line").length >= count, n, {
    timeout: 10_000,
  });
  return lines(p);
}

test("the served Socket.IO client loads in a page of a listed origin and connects", async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${site.origin}${BLANK}`);
    await page.addScriptTag({ url: `${ctx.url}/socket.io/socket.io.min.js` });
    const reply = await page.evaluate(async (hub) => {
      const { io } = globalThis as unknown as {
        io: (url: string, o: object) => { emitWithAck(e: string, a: unknown): Promise<unknown> };
      };
      const socket = io(`${hub}/chat`, { auth: { clientId: "script-tag" } });
      return socket.emitWithAck("publish", { event: "message", payload: { text: "hi" }, to: "someone" });
    }, ctx.url);
    expect(reply).toEqual({ ok: true, messageId: expect.any(String) });
  } finally {
    await page.close();
  }
}, 30_000);

test("two people chat in a room over polling then WebSocket; the sender gets no copy", async () => {
  const before = engines.length;
  const ada = await open("ada");
  const grace = await open("grace");
  await say(ada, "hello grace");
  expect(await linesUntil(grace, 1)).toEqual(["ada: hello grace (hub)"]);
  await say(grace, "hi ada!");
  expect(await linesUntil(ada, 2)).toEqual(["ada: hello grace (self)", "grace: hi ada! (hub)"]);
  // No copy of her own line came back to ada, now or later.
  await settle(300);
  expect(await lines(ada)).toEqual(["ada: hello grace (self)", "grace: hi ada! (hub)"]);
  expect(await ctx.hub.store.pending("/chat", "ada", Date.now())).toBe(0);
  // Both pages started on polling and moved to WebSocket.
  const theirs = engines.slice(before);
  expect(theirs.map((e) => e.first)).toEqual(["polling", "polling"]);
  expect(theirs.map((e) => e.conn.transport.name)).toEqual(["websocket", "websocket"]);
  expect([...ada.errors, ...grace.errors]).toEqual([]);
}, 60_000);

test("presence: a member's page opening and closing shows to the others", async () => {
  const linus = await open("linus");
  const ken = await open("ken");
  await linus.page.waitForSelector("#members li[data-member=ken].online");
  await ken.page.waitForSelector("#members li[data-member=linus].online");
  await ken.context.close();
  await linus.page.waitForSelector("#members li[data-member=ken].offline", { timeout: 10_000 });
  expect(await linus.page.textContent("#lines")).toContain("ken is offline");
}, 60_000);

test("a closed tab, reopened, catches up exactly the lines it missed, once, in order", async () => {
  const alan = await open("alan");
  const barbara = await open("barbara");
  await say(alan, "before you left");
  expect(await linesUntil(barbara, 1)).toEqual(["alan: before you left (hub)"]);
  // barbara closes her tab (her browser keeps its storage); alan goes on talking.
  const context = barbara.context;
  await barbara.page.close();
  await alan.page.waitForSelector("#members li[data-member=barbara].offline");
  const missed = ["one", "two", "three"];
  for (const text of missed) await say(alan, text);
  const back = await open("barbara", context);
  expect(await linesUntil(back, 3)).toEqual(missed.map((text) => `alan: ${text} (hub)`));
  await settle(500);
  expect(await lines(back)).toEqual(missed.map((text) => `alan: ${text} (hub)`));
  expect(await back.page.textContent("#lines")).toContain("while you were away");
  expect(back.errors).toEqual([]);
}, 60_000);

test("a name typed and entered while the page is still loading is kept, and the page keeps its hub", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  people.push({ context, page, errors: watchErrors(page) });
  // A slow network: the client library arrives 1.5 s after the form is on screen.
  await page.route("**/queuehub/client.js", async (route) => {
    await settle(1500);
    await route.continue();
  });
  await page.goto(`${site.origin}/?hub=${encodeURIComponent(ctx.url)}`, { waitUntil: "commit" });
  await page.fill("#name", "grace"); // typed before the script runs: it must stay
  await page.click("#enter button"); // a native submit would go to ?name=grace, forgetting ?hub=
  await page.waitForSelector("#status[data-state=online]", { timeout: 15_000 });
  expect(await page.textContent("#who")).toBe("you are grace");
  expect(new URL(page.url()).searchParams.get("hub")).toBe(ctx.url);
}, 60_000);

test("a page from an origin the hub does not list is refused, over polling and WebSocket", async () => {
  const page = await browser.newPage();
  try {
    // The same static server under another name: another origin, not in HUB_CORS_ORIGINS.
    const foreign = site.origin.replace("127.0.0.1", "localhost");
    await page.goto(`${foreign}${BLANK}`);
    // A classic script needs no CORS: the page has Socket.IO, but the hub will not let it in.
    await page.addScriptTag({ url: `${ctx.url}/socket.io/socket.io.min.js` });
    const before = ctx.hub.io.engine.clientsCount;
    const outcomes = await page.evaluate(async (hub) => {
      const { io } = globalThis as unknown as {
        io: (url: string, o: object) => { on(e: string, f: (err?: Error) => void): void; close(): void };
      };
      const attempt = (transports: string[]) =>
        new Promise<string>((resolve) => {
          const socket = io(`${hub}/chat`, {
            auth: { clientId: "intruder" },
            transports,
            reconnection: false,
          });
          socket.on("connect", () => resolve("connected"));
          socket.on("connect_error", (err) => {
            socket.close();
            resolve(`refused: ${err?.message}`);
          });
        });
      return [await attempt(["polling"]), await attempt(["websocket"])];
    }, ctx.url);
    expect(outcomes).toEqual(["refused: xhr poll error", "refused: websocket error"]);
    expect(ctx.hub.io.engine.clientsCount).toBe(before);
    expect(await ctx.hub.store.pending("/chat", "intruder", Date.now())).toBe(0);
    // Nor can it load the client library as a module (no CORS header for it).
    const imported = await page.evaluate(
      (url) =>
        import(url).then(
          () => "loaded",
          () => "blocked",
        ),
      `${ctx.url}/queuehub/client.js`,
    );
    expect(imported).toBe("blocked");
  } finally {
    await page.close();
  }
}, 30_000);

test("served by a hub with HUB_SECRET, the page gets its token from the development endpoint, or says what to do", async () => {
  const secret = "chat-secret";
  for (const devTokens of [true, false]) {
    const hub = await startHub({ secret, devTokens });
    const page = await browser.newPage();
    const errors = watchErrors(page);
    try {
      await page.goto(`${hub.url}/examples/chat/?name=ada`);
      if (devTokens) {
        await page.waitForSelector("#status[data-state=online]", { timeout: 15_000 });
        await page.waitForSelector("#members li[data-member=ada].online");
        expect(hub.hub.io.of("/chat").sockets.size).toBe(1);
      } else {
        await page.waitForFunction(() => document.querySelector("#enter-error")?.textContent !== "", null, {
          timeout: 15_000,
        });
        expect(await page.textContent("#enter-error")).toContain("HUB_DEV_TOKENS=1");
      }
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await hub.close();
    }
  }
}, 60_000);

test("DNS rebinding: a page whose name now points at the hub gets nothing from it, over HTTP, polling or WebSocket", async () => {
  const page = await browser.newPage();
  try {
    // The attacker's page, at the attacker's name, which now resolves to the hub's address. (Its
    // document here is the hub's refusal of it: a page the attacker served before rebinding would
    // be in the public address space, where Chromium's own Private Network Access checks step in;
    // other browsers have none, so the hub must refuse by itself.)
    const attacker = `http://${REBOUND_HOST}:${ctx.hub.port}`;
    const first = await page.goto(`${attacker}/attack.html`);
    expect(first?.status()).toBe(403);
    // Every request below reaches the hub as the page's own, same-origin.
    const outcomes = await page.evaluate(async () => {
      const status = (res: Response) => res.status;
      const socket = await new Promise<string>((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/socket.io/?EIO=4&transport=websocket`);
        ws.onopen = () => resolve("open");
        ws.onerror = () => resolve("refused");
      });
      return {
        read: await fetch("/dead-letters?ns=caps").then(status),
        poll: await fetch("/socket.io/?EIO=4&transport=polling").then(status),
        publish: await fetch("/publish/chat/message", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ text: "pwned" }),
        }).then(status),
        socket,
      };
    });
    expect(outcomes).toEqual({ read: 403, poll: 403, publish: 403, socket: "refused" });
  } finally {
    await page.close();
  }
}, 30_000);
