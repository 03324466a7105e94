// The delivery-semantics suite on the default durable store, one temp file per hub.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite/index.js";
import { settle, startHub, waitUntil } from "./support/hub.js";
import { deliverySemantics } from "./support/semantics.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-hub-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

deliverySemantics("one hub, SQLite store", (overrides) =>
  startHub(overrides, SqliteStore.open({ file: join(dir, `hub-${++n}.db`), sync: "normal" })),
);

test("a big backlog streams within the window while other clients keep being served", async () => {
  const ctx = await startHub(
    { prefetch: 50 },
    SqliteStore.open({ file: join(dir, "backlog.db"), sync: "normal" }),
  );
  try {
    const pub = await ctx.client("/", { clientId: "pub" });
    const busy = await ctx.client("/", { clientId: "busy", batch: true });
    await busy.request("subscribe", { event: "bulk" });
    busy.close();
    const batch = Array.from({ length: 100 }, (_, i) => ({ event: "bulk", payload: i }));
    for (let i = 0; i < 50; i++) expect(await pub.request("publish", batch)).toMatchObject({ ok: true });
    const back = await ctx.client("/", { clientId: "busy", batch: true });
    await back.received(50);
    // The window holds: 50 in flight, 4,950 still in the store.
    expect(await back.request("getAll", {})).toEqual({ ok: true, count: 5000 });
    const other = await ctx.client("/", { clientId: "other" });
    await other.request("subscribe", { event: "ping" });
    await pub.request("ping", "served");
    await other.received(1);
    expect(back.messages).toHaveLength(50);
    // Draining with acks streams the rest in order, never more than the window ahead.
    let acked = 0;
    while (acked < 5000) {
      const ids = back.messages.slice(acked).map((m) => m.messageId);
      expect(ids.length).toBeLessThanOrEqual(50);
      await back.request("received", { messageIds: ids });
      acked += ids.length;
      if (acked < 5000) await back.received(acked + 1);
    }
    expect(back.payloads()).toEqual(Array.from({ length: 5000 }, (_, i) => i % 100));
  } finally {
    await ctx.close();
  }
}, 30_000);

test("a long run of expired messages is cleared in short steps, and what follows it is delivered", async () => {
  const store = SqliteStore.open({ file: join(dir, "expired.db"), sync: "normal" });
  const ctx = await startHub({}, store);
  try {
    const pub = await ctx.client("/", { clientId: "pub" });
    const sub = await ctx.client("/", { clientId: "sub" });
    await sub.request("subscribe", { event: "e" });
    sub.close();
    // 2,500 messages that expire at once (more than one claim removes), then one that does not.
    const batch = Array.from({ length: 100 }, (_, i) => ({ event: "e", payload: i, ttl: 30 }));
    for (let i = 0; i < 25; i++) expect(await pub.request("publish", batch)).toMatchObject({ ok: true });
    expect(await pub.request("publish", { event: "e", payload: "fresh" })).toMatchObject({ ok: true });
    await settle(60);
    const commits = store.commits;
    const back = await ctx.client("/", { clientId: "sub" });
    await back.received(1);
    expect(back.payloads()).toEqual(["fresh"]);
    // The expired ones went in several claims, each its own short operation.
    expect(store.commits - commits).toBeGreaterThan(2);
  } finally {
    await ctx.close();
  }
});

test("HUB_SYNC=full on the wire: a publish is acked once the WAL sync after its commit is done; a failed sync answers UNAVAILABLE and /healthz degrades", async () => {
  // Syncs finish at once, except while `hold` is set: then they wait in `held`.
  let hold = false;
  const held: ((err: NodeJS.ErrnoException | null) => void)[] = [];
  const store = SqliteStore.open({
    file: join(dir, "full.db"),
    sync: "full",
    syncFn: (_fd, done) => (hold ? held.push(done) : setImmediate(() => done(null))),
  });
  const ctx = await startHub({}, store);
  try {
    const sub = await ctx.client("/", { clientId: "sub" });
    expect(await sub.request("subscribe", { event: "tick" })).toMatchObject({ ok: true });
    const pub = await ctx.client("/", { clientId: "pub" });
    hold = true;
    let acked = false;
    const reply = pub.request("tick", "durable").then((r) => {
      acked = true;
      return r;
    });
    await waitUntil(() => held.length > 0, 10_000);
    await settle(100);
    // Committed, not yet on disk: neither the publisher's ack nor the delivery has gone out.
    expect(acked).toBe(false);
    expect(sub.messages).toHaveLength(0);
    hold = false;
    for (const done of held.splice(0)) done(null);
    expect(await reply).toMatchObject({ ok: true });
    await sub.received(1);
    // The disk fails a sync: that publish is refused, and so is the next one, until a restart.
    hold = true;
    const failed = pub.request("tick", "lost?");
    await waitUntil(() => held.length > 0, 10_000);
    hold = false;
    const eio = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
    for (const done of held.splice(0)) done(eio);
    expect(await failed).toMatchObject({ ok: false, error: { code: "UNAVAILABLE" } });
    expect(await pub.request("tick", "after")).toMatchObject({ ok: false, error: { code: "UNAVAILABLE" } });
    const health = await fetch(`${ctx.url}/healthz`);
    expect(health.status).toBe(503);
  } finally {
    hold = false;
    for (const done of held.splice(0)) done(null);
    await ctx.close();
  }
});
