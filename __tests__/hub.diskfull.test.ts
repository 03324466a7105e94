// No ack without storage, and a full disk still drains. When SQLite cannot write, publishes are
// refused with UNAVAILABLE and /healthz says degraded (503); deliveries and acks go on (the reserve
// file is given back, the WAL truncated); once the disk has room again everything works as before,
// without a restart.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite/index.js";
import { startHub, type TestClient, type TestContext, waitUntil } from "./support/hub.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-full-"));
let ctx: TestContext | undefined;
afterEach(async () => {
  await ctx?.close();
  ctx = undefined;
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const health = async (url: string) => {
  const res = await fetch(`${url}/healthz`);
  return { status: res.status, body: (await res.json()) as { status: string } };
};

test("a write SQLite refuses (SQLITE_FULL) turns into { ok: false, UNAVAILABLE }, and the hub keeps running", async () => {
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
  expect((await health(ctx.url)).status).toBe(200);
});

/** Unmounts a file system the test mounted (the hub's file may take a moment to close). */
async function unmount(mountPoint: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      execFileSync("umount", [mountPoint]);
      return;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// A real small file system: only root can mount one; CI runs as root.
const canMount = process.getuid?.() === 0;
if (!canMount && process.env.CI !== "true") {
  console.warn("Skipping the tmpfs disk-full test: mounting a 20 MB tmpfs needs root (CI runs it).");
}

(canMount || process.env.CI === "true" ? test : test.skip)(
  "a disk that fills for real (20 MB tmpfs): publishes refused, /healthz degraded, every acked message drains; room again, all as before",
  async () => {
    const mnt = mkdtempSync(join(tmpdir(), "queuehub-tmpfs-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt]);
    try {
      const filler = join(mnt, "someone-else's-file");
      writeFileSync(filler, Buffer.alloc(6 << 20, 1));
      const reserve = 4 << 20;
      const store = SqliteStore.open({ file: join(mnt, "hub.db"), sync: "normal", reserveBytes: reserve });
      expect(statSync(join(mnt, "hub.db-reserve")).size).toBe(reserve);
      const hub = await startHub({ ackTimeoutMs: 120_000 }, store);
      ctx = hub;
      const sub = await hub.client("/", { clientId: "sub" });
      await sub.request("subscribe", { event: "e" });
      sub.close();

      // Fill the disk with publishes until the hub refuses one.
      const pub = await hub.client("/", { clientId: "pub" });
      const pad = "x".repeat(8_000);
      const acked: string[] = [];
      let refusal: unknown;
      for (let i = 0; refusal === undefined; i++) {
        if (i > 2_000) throw new Error("20 MB never filled");
        const batch = Array.from({ length: 20 }, (_, j) => ({ event: "e", payload: { i, j, pad } }));
        const reply = await pub.request("publish", batch);
        if (reply.ok) acked.push(...(reply.messageIds as string[]));
        else refusal = reply;
      }
      expect(refusal).toEqual({ ok: false, error: { code: "UNAVAILABLE", message: expect.any(String) } });
      expect(acked.length).toBeGreaterThan(200);
      expect(await health(hub.url)).toEqual({
        status: 503,
        body: expect.objectContaining({ status: "degraded" }),
      });
      expect(await pub.request("e", "while full")).toMatchObject({
        ok: false,
        error: { code: "UNAVAILABLE" },
      });

      // The subscriber comes back: everything the hub acked is delivered, and every ack is stored.
      const drain = async (client: TestClient, total: number) => {
        let acked = 0;
        let removed = 0;
        await waitUntil(
          () => client.messages.length > acked || acked >= total,
          60_000,
          () => `${client.messages.length} of ${total} delivered`,
        );
        while (acked < total) {
          await waitUntil(
            () => client.messages.length > acked,
            60_000,
            () => `${acked} of ${total} acked`,
          );
          const ids = client.messages.slice(acked).map((m) => m.messageId);
          acked += ids.length;
          const reply = await client.request("received", { messageIds: ids });
          expect(reply).toMatchObject({ ok: true });
          removed += reply.removed as number;
        }
        return removed;
      };
      const back = await hub.client("/", { clientId: "sub" });
      expect(await drain(back, acked.length)).toBe(acked.length);
      expect(new Set(back.messages.map((m) => m.messageId))).toEqual(new Set(acked));
      expect(await back.request("getAll", {})).toEqual({ ok: true, count: 0 });

      // Room again (another program frees its file): the reserve is made again and all works.
      rmSync(filler);
      const deadline = Date.now() + 10_000;
      while ((await health(hub.url)).status !== 200) {
        if (Date.now() > deadline) throw new Error("/healthz never came back to 200");
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(statSync(join(mnt, "hub.db-reserve")).size).toBe(reserve);
      back.messages.length = 0;
      const later: string[] = [];
      for (let i = 0; i < 5; i++) later.push((await pub.request("e", { after: i })).messageId as string);
      expect(await drain(back, later.length)).toBe(later.length);
      expect(back.messages.map((m) => m.messageId)).toEqual(later);
      expect(await health(hub.url)).toEqual({
        status: 200,
        body: expect.objectContaining({ status: "healthy" }),
      });
    } finally {
      await ctx?.close();
      ctx = undefined;
      await unmount(mnt);
      rmSync(mnt, { recursive: true, force: true });
    }
  },
  120_000,
);
