// No ack without storage: when SQLite cannot write (disk full), publishes and acks are
// refused with UNAVAILABLE, the hub keeps serving, and it recovers when space comes back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite/index.js";
import { startHub, type TestContext } from "./support/hub.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-full-"));
let ctx: TestContext;
afterAll(async () => {
  await ctx?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("disk full turns into { ok: false, UNAVAILABLE } replies, and the hub keeps running", async () => {
  const store = SqliteStore.open({ file: join(dir, "full.db"), sync: "normal" });
  ctx = await startHub({}, store);
  const sub = await ctx.client("/", { clientId: "sub" });
  await sub.request("subscribe", { event: "e" });
  const pub = await ctx.client("/", { clientId: "pub" });
  expect(await pub.request("e", "stored")).toMatchObject({ ok: true });
  const [first] = await sub.received(1);

  // Freeze the file at its current size: the next page SQLite needs is refused (SQLITE_FULL).
  store.db.pragma("wal_checkpoint(TRUNCATE)");
  store.db.pragma(`max_page_count = ${store.db.pragma("page_count", { simple: true })}`);
  const big = "x".repeat(50_000);
  const refused = await pub.request("e", big);
  expect(refused).toEqual({ ok: false, error: { code: "UNAVAILABLE", message: expect.any(String) } });
  expect(await sub.request("getAll", {})).toEqual({ ok: true, count: 1 });

  // Room again: the same hub, no restart, stores and delivers.
  store.db.pragma("max_page_count = 1073741823");
  expect(await pub.request("e", "after")).toMatchObject({ ok: true });
  await sub.received(2);
  expect(sub.payloads()).toEqual(["stored", "after"]);
  expect(await sub.request("received", { messageId: first?.messageId })).toEqual({ ok: true, removed: 1 });
  expect((await fetch(`${ctx.url}/healthz`)).status).toBe(200);
});
