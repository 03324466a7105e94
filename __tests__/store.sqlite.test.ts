import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL, SqliteStore } from "../src/store/sqlite/index.js";
import { clientQueue, type EnqueueRequest, type NewMessage, StoreError } from "../src/store/store.js";
import { waitUntil } from "./support/hub.js";
import { storeConformance } from "./support/store-conformance.js";

const dirs: string[] = [];
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "queuehub-sqlite-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

storeConformance("SqliteStore", async () => {
  const dir = tempDir();
  const file = join(dir, "sub", "hub.db"); // the folder is created on open
  let store = SqliteStore.open({ file, sync: "normal" });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
    reopen: async () => {
      await store.close();
      store = SqliteStore.open({ file, sync: "normal" });
      return store;
    },
  };
});

/** The tables of schema version 2 (one row per queue entry), as an earlier build wrote them. */
const V2_SCHEMA = `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
      CREATE TABLE queues (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, UNIQUE (ns, name));
      CREATE TABLE bodies (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, event TEXT NOT NULL, payload TEXT, published_at INTEGER NOT NULL, sender TEXT, refs INTEGER NOT NULL);
      CREATE INDEX bodies_message_id ON bodies (message_id);
      CREATE TABLE entries (seq INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, body INTEGER NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0, expires_at INTEGER);
      CREATE INDEX entries_queue ON entries (queue_id);
      CREATE TABLE dead (id INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, body INTEGER NOT NULL, deliveries INTEGER NOT NULL, reason TEXT NOT NULL, dead_at INTEGER NOT NULL);
      CREATE INDEX dead_body ON dead (body);
      CREATE TABLE events (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, event TEXT NOT NULL, UNIQUE (ns, event));
      CREATE TABLE subs (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, client_id TEXT NOT NULL, grp TEXT, UNIQUE (event_id, client_id));
      CREATE TABLE dedup (ns TEXT NOT NULL, key TEXT NOT NULL, ids TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
`;

describe("SqliteStore specifics", () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = tempDir();
    file = join(dir, "hub.db");
    store = SqliteStore.open({ file, sync: "full" });
  });
  afterEach(async () => {
    await store.close();
  });

  const message = (i: number, extra: Partial<NewMessage> = {}): NewMessage => ({
    messageId: `0190-${String(i).padStart(6, "0")}`,
    event: "x",
    payload: { i },
    publishedAt: 1,
    from: null,
    expiresAt: null,
    to: ["a"],
    ...extra,
  });
  const req = (i: number, extra: Partial<EnqueueRequest> = {}): EnqueueRequest => ({
    ns: "/",
    messages: [message(i)],
    now: 1,
    dedupWindowMs: 1000,
    maxQueueLength: 0,
    overflow: "reject",
    ...extra,
  });

  it("claims do not re-read leased entries, yet see released, expired and reused-sequence ones", async () => {
    const claim = (now: number, limit = 10) =>
      store.claim({
        ns: "/",
        queue: clientQueue("a"),
        consumer: "a",
        limit,
        now,
        leaseMs: 100,
        maxDeliveries: 0,
      });
    const ids = async (now: number, limit?: number) =>
      (await claim(now, limit)).messages.map((m) => (m.payload as { i: number }).i);
    for (let i = 1; i <= 4; i++) await store.enqueue(req(i));
    expect(await ids(1, 2)).toEqual([1, 2]);
    expect(await ids(2, 2)).toEqual([3, 4]);
    expect(await ids(3)).toEqual([]);
    await store.release("/", clientQueue("a"), "a", ["0190-000002"]);
    expect(await ids(4)).toEqual([2]);
    // Leases run out at 101 (1, 3, 4 claimed at 1 and 2; 2 again at 4, until 104).
    expect(await ids(103)).toEqual([1, 3, 4]);
    await store.ack("/", "a", ["0190-000001", "0190-000002", "0190-000003", "0190-000004"]);
    // The table is empty: SQLite may hand out a used sequence number again.
    await store.enqueue(req(5));
    expect(await ids(103)).toEqual([5]);
  });

  it("sets WAL and the synchronous level it is given (full: NORMAL, and the store syncs each commit)", async () => {
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(1);
    await store.close();
    store = SqliteStore.open({ file, sync: "normal" });
    expect(store.db.pragma("synchronous", { simple: true })).toBe(1);
    await store.close();
    store = SqliteStore.open({ file: ":memory:", sync: "full" });
    expect(store.db.pragma("synchronous", { simple: true })).toBe(2);
    await store.close();
    store = SqliteStore.open({ file, sync: "off" });
    expect(store.db.pragma("synchronous", { simple: true })).toBe(0);
    expect(store.db.pragma("user_version", { simple: true })).toBe(4);
  });

  it("HUB_SYNC=full: writes settle only once a WAL sync begun after their commit is done; writes made during a sync are committed together when it ends", async () => {
    await store.close();
    const syncs: { fd: number; done: (err: NodeJS.ErrnoException | null) => void }[] = [];
    store = SqliteStore.open({ file, sync: "full", syncFn: (fd, done) => syncs.push({ fd, done }) });
    let settled = 0;
    const first = store.enqueue(req(1)).then(() => settled++);
    await waitUntil(() => syncs.length === 1, 10_000);
    // Committed (a read sees it) but not settled: its sync has not finished.
    expect(await store.pending("/", "a", 1)).toBe(1);
    const commits = store.commits;
    const later = [store.enqueue(req(2)), store.enqueue(req(3))].map((p) => p.then(() => settled++));
    await new Promise((r) => setTimeout(r, 20));
    // Held while the sync runs: they would wait for the next sync anyway.
    expect(store.commits).toBe(commits);
    expect(await store.pending("/", "a", 1)).toBe(1);
    expect(settled).toBe(0);
    expect(syncs).toHaveLength(1); // the next sync waits for the running one
    syncs[0]?.done(null);
    await first;
    expect(settled).toBe(1);
    await waitUntil(() => syncs.length === 2, 10_000);
    expect(store.commits).toBe(commits + 1); // both in one commit, covered by one sync
    expect(await store.pending("/", "a", 1)).toBe(3);
    expect(settled).toBe(1);
    syncs[1]?.done(null);
    await Promise.all(later);
    expect(settled).toBe(3);
    // Closing syncs what still waits on the closing thread: nothing is left unsettled.
    const last = store.enqueue(req(4));
    await waitUntil(() => syncs.length === 3, 10_000);
    const atClose = store.enqueue(req(5));
    await store.close();
    await expect(atClose).resolves.toMatchObject({ queues: [clientQueue("a")] });
    syncs[2]?.done(null);
    await expect(last).resolves.toMatchObject({ queues: [clientQueue("a")] });
    syncs.length = 0;
    // maxBatch 1: a full batch is committed at once, even while a sync runs.
    store = SqliteStore.open({
      file,
      sync: "full",
      maxBatch: 1,
      syncFn: (fd, done) => syncs.push({ fd, done }),
    });
    expect(await store.pending("/", "a", 10)).toBe(5);
    // A failed sync: that batch is refused as UNAVAILABLE, and so is every later write (nothing
    // after it can be known to be on disk) until the store is opened again; health says so.
    const failed = store.enqueue(req(6));
    const queuedMeanwhile = store.enqueue(req(7));
    await waitUntil(() => syncs.length === 1, 10_000);
    const committed = store.commits;
    // Committed while the failing sync runs: its own sync succeeds, but frames after a lost one
    // are lost with it (WAL frames are checksummed in a chain), so it is refused too.
    const after = store.enqueue(req(8));
    await waitUntil(() => store.commits > committed, 10_000);
    syncs[0]?.done(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
    await waitUntil(() => syncs.length === 2, 10_000);
    syncs[1]?.done(null);
    await expect(failed).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringContaining("restart"),
    });
    await expect(queuedMeanwhile).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(after).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(store.enqueue(req(9))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await store.healthy()).toBe(false);
    await store.close();
    store = SqliteStore.open({ file, sync: "full" });
    expect(await store.healthy()).toBe(true);
  });

  it("group commit: 500 concurrent writes share a handful of commits, in arrival order", async () => {
    const before = store.commits;
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => store.enqueue(req(i))));
    expect(results.every((r) => r.queues.length === 1)).toBe(true);
    const commits = store.commits - before;
    expect(commits).toBeGreaterThanOrEqual(2); // maxBatch 256
    expect(commits).toBeLessThanOrEqual(4);
    const claimed = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 1000,
      now: 1,
      leaseMs: 10,
      maxDeliveries: 0,
    });
    expect(claimed.messages.map((m) => (m.payload as { i: number }).i)).toEqual(
      Array.from({ length: 500 }, (_, i) => i),
    );
  });

  it("with flushIntervalMs 0 (the hub's default) writes of one event-loop turn still share a commit", async () => {
    await store.close();
    store = SqliteStore.open({ file, sync: "normal", flushIntervalMs: 0 });
    const before = store.commits;
    await Promise.all(Array.from({ length: 500 }, (_, i) => store.enqueue(req(i))));
    expect(store.commits - before).toBeLessThanOrEqual(4);
    // A lone write is committed by itself, without waiting for company.
    await store.enqueue(req(1000));
    expect(store.commits - before).toBeLessThanOrEqual(5);
  });

  it("a full batch commits on the next turn of the event loop: busy writers never starve timers", async () => {
    await store.close();
    store = SqliteStore.open({ file, sync: "off", maxBatch: 4 });
    let stop = false;
    let done = 0;
    setTimeout(() => {
      stop = true;
    }, 20);
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        while (!stop) await store.enqueue(req(w * 1_000_000 + done++));
      }),
    );
    expect(done).toBeGreaterThan(8);
  });

  it("one caller alone is committed after ~flushIntervalMs", async () => {
    const t = performance.now();
    await store.enqueue(req(1));
    expect(performance.now() - t).toBeLessThan(100);
    expect(store.commits).toBeGreaterThan(0);
  });

  it("stores a fanned-out batch once: one chunk, one segment per queue", async () => {
    for (let i = 0; i < 100; i++) await store.subscribe("/", `c${i}`, ["x"], null);
    const r = await store.enqueue({
      ...req(1),
      messages: [message(1, { to: undefined }), message(2, { to: undefined })],
    });
    expect(r.queues).toHaveLength(100);
    expect(count("chunks")).toBe(1);
    expect(count("segments")).toBe(100);
    for (let i = 0; i < 100; i++) await store.ack("/", `c${i}`, ["0190-000001", "0190-000002"]);
    expect(count("chunks")).toBe(0);
    expect(count("segments")).toBe(0);
  });

  const count = (table: string) => store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
  const column = (sql: string) => store.db.prepare(sql).pluck().all();
  const claimAll = (client: string, now = 1, leaseMs = 1000, maxDeliveries = 0) =>
    store.claim({
      ns: "/",
      queue: clientQueue(client),
      consumer: client,
      limit: 100,
      now,
      leaseMs,
      maxDeliveries,
    });

  it("one chunk per set of queues: freed after the last segment pointing at it empties", async () => {
    for (const c of ["a", "b", "c"]) await store.subscribe("/", c, ["x"], null);
    await store.enqueue({ ...req(1), messages: [message(1, { to: undefined }), message(2, { to: ["a"] })] });
    // a gets both messages (a chunk of its own), b and c share a chunk of message 1.
    expect(column("SELECT refs FROM chunks ORDER BY id")).toEqual([1, 2]);
    await claimAll("a");
    await claimAll("b");
    expect(await store.ack("/", "a", ["0190-000001", "0190-000002"])).toHaveLength(2);
    expect(count("chunks")).toBe(1);
    expect(await store.ack("/", "b", ["0190-000001"])).toEqual(["0190-000001"]); // by hint
    expect(await store.ack("/", "c", ["0190-000001"])).toEqual(["0190-000001"]); // never claimed: by id bounds
    expect(count("chunks")).toBe(0);
    expect(count("segments")).toBe(0);
    expect(column("SELECT size FROM queues")).toEqual([0, 0, 0]);
  });

  it("leases and deliveries are written to the segment; a dead letter keeps its own copy", async () => {
    await store.enqueue({ ...req(1), messages: [message(1), message(2)] });
    await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 1,
      now: 1,
      leaseMs: 10,
      maxDeliveries: 1,
    });
    expect(column("SELECT leased FROM segments")).toEqual([1]);
    expect(JSON.parse(column("SELECT members FROM segments")[0] as string)).toEqual([
      0,
      1,
      "a",
      11,
      1,
      0,
      null,
      0,
    ]);
    const r = await claimAll("a", 20, 10, 1); // message 1's lease ran out at deliveries 1 >= 1
    expect(r.deadLettered).toBe(1);
    expect(r.messages.map((m) => m.messageId)).toEqual(["0190-000002"]);
    expect(await store.ack("/", "a", ["0190-000002"])).toHaveLength(1);
    expect(count("chunks")).toBe(0);
    expect(count("dead")).toBe(1);
    expect(await store.requeueDead("/", ["0190-000001"])).toEqual([clientQueue("a")]);
    expect(count("dead")).toBe(0);
    expect(count("chunks")).toBe(1);
    const again = await claimAll("a", 30, 10, 1);
    expect(again.messages.map((m) => [m.messageId, m.payload, m.deliveries])).toEqual([
      ["0190-000001", { i: 1 }, 1],
    ]);
  });

  it("sizes and chunks: sweep, unsubscribe and drop-oldest", async () => {
    for (const c of ["a", "b"]) await store.subscribe("/", c, ["x", "y"], null);
    const fan = (i: number, extra: Partial<NewMessage> = {}) => message(i, { to: undefined, ...extra });
    await store.enqueue({ ...req(1), messages: [fan(1, { expiresAt: 5 }), fan(2, { event: "y" }), fan(3)] });
    expect(column("SELECT expires_at FROM segments")).toEqual([5, 5]);
    expect(await store.sweep(10)).toBe(2); // message 1 from both queues
    expect(column("SELECT expires_at FROM segments")).toEqual([null, null]);
    expect(await store.unsubscribe("/", "a", ["y"])).toBe(1);
    expect(await store.unsubscribe("/", "b", ["y"])).toBe(1);
    expect(count("chunks")).toBe(1);
    const limits = { maxQueueLength: 2, overflow: "drop-oldest" as const };
    const r = await store.enqueue({ ...req(4, limits), messages: [fan(4), fan(5), fan(6)] });
    expect(r.dropped).toBe(4); // messages 3 and 4 from both queues
    expect(await store.pending("/", "a", 1)).toBe(2);
    expect(await store.pending("/", "b", 1)).toBe(2);
    expect(column("SELECT size FROM queues ORDER BY id")).toEqual([2, 2]);
    expect(count("chunks")).toBe(1); // the first chunk went with its last member
    expect(await store.dropDead("/", ["0190-000003", "0190-000004"])).toBe(4);
    expect(count("dead")).toBe(0);
  });

  it("acks: a stale hint or an id outside every segment's bounds never removes the wrong entry", async () => {
    await store.enqueue(req(1));
    await store.enqueue(req(2));
    expect((await claimAll("a")).messages).toHaveLength(2);
    expect(await store.ack("/", "a", ["0190-000001"])).toEqual(["0190-000001"]);
    // The hint for message 1 points at a deleted segment now.
    expect(await store.ack("/", "a", ["0190-000001", "0190-000000", "0190-0000015", "zzz"])).toEqual([]);
    expect(await store.pending("/", "a", 1)).toBe(1);
    await store.enqueue(req(3));
    // Message 3 was never claimed (by bounds); message 2 by its hint.
    expect(await store.ack("/", "a", ["0190-000003", "0190-000002"])).toEqual(["0190-000003", "0190-000002"]);
    expect(await store.pending("/", "a", 1)).toBe(0);
    expect(count("segments")).toBe(0);
  });

  it("a claim removes at most 2,000 expired entries, then says there is more", async () => {
    const expiring = Array.from({ length: 2500 }, (_, i) => message(i, { expiresAt: 5 }));
    for (let i = 0; i < 2500; i += 100)
      await store.enqueue({ ...req(0), messages: expiring.slice(i, i + 100) });
    await store.enqueue(req(9999));
    const first = await claimAll("a", 10);
    expect([first.messages.length, first.expired, first.more]).toEqual([0, 2000, true]);
    const second = await claimAll("a", 10);
    expect([second.messages.map((m) => m.messageId), second.expired, second.more]).toEqual([
      ["0190-009999"],
      500,
      undefined,
    ]);
  });

  it("sweep works in steps of 500 segments, each its own commit, until nothing expired is left", async () => {
    for (let i = 0; i < 1200; i++)
      await store.enqueue({ ...req(i), messages: [message(i, { expiresAt: 5 })] });
    await store.enqueue(req(5000));
    const before = store.commits;
    expect(await store.sweep(10)).toBe(1200);
    expect(store.commits - before).toBe(3);
    expect(await store.pending("/", "a", 10)).toBe(1);
    expect(count("chunks")).toBe(1);
  });

  it("acks in a group queue: only the lease holder's ack removes the entry", async () => {
    for (const c of ["a", "b"]) await store.subscribe("/", c, ["x"], "g");
    await store.enqueue({ ...req(1), messages: [message(1, { to: undefined })] });
    const r = await store.claim({
      ns: "/",
      queue: "g:g",
      consumer: "a",
      limit: 10,
      now: 1,
      leaseMs: 1000,
      maxDeliveries: 0,
    });
    expect(r.messages).toHaveLength(1);
    expect(await store.ack("/", "b", ["0190-000001"])).toEqual([]);
    expect(await store.ack("/", "a", ["0190-000001"])).toEqual(["0190-000001"]);
    expect(count("chunks")).toBe(0);
  });

  it("state survives the caches: a reopened store reads segments back from the file", async () => {
    const messages = Array.from({ length: 250 }, (_, i) => message(i));
    await store.enqueue({ ...req(0), messages: messages.slice(0, 100) });
    await store.enqueue({ ...req(0), messages: messages.slice(100) });
    const first = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 150,
      now: 1,
      leaseMs: 100,
      maxDeliveries: 0,
    });
    expect(first.messages).toHaveLength(150);
    expect(
      await store.ack(
        "/",
        "a",
        first.messages.slice(0, 120).map((m) => m.messageId),
      ),
    ).toHaveLength(120);
    await store.close();
    store = SqliteStore.open({ file, sync: "full" });
    expect(await store.pending("/", "a", 1)).toBe(130);
    expect((await store.stats({ limit: 10 }, "/")).items[0]).toMatchObject({ pending: 130 });
    // The 30 still leased come back once their lease runs out, oldest first, after nothing else.
    const next = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 1000,
      now: 50,
      leaseMs: 100,
      maxDeliveries: 0,
    });
    expect(next.messages.map((m) => (m.payload as { i: number }).i)).toEqual(
      Array.from({ length: 100 }, (_, i) => 150 + i),
    );
    const late = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 1000,
      now: 200,
      leaseMs: 100,
      maxDeliveries: 0,
    });
    expect(late.messages.map((m) => [(m.payload as { i: number }).i, m.deliveries]).slice(0, 2)).toEqual([
      [120, 2],
      [121, 2],
    ]);
    expect(late.messages).toHaveLength(130);
  });

  it("after migrating a version 2 file, acks without a hint find entries that were out of id order", async () => {
    await store.close();
    const old = join(dir, "v2-order.db");
    const Database = (await import("better-sqlite3")).default;
    const db2 = new Database(old);
    db2.exec(V2_SCHEMA);
    // In queue order: 5000, 9001..9010, then requeued dead letters with older ids 1 and 5002.
    const ids = [5000, ...Array.from({ length: 10 }, (_, i) => 9001 + i), 1, 5002].map(
      (n) => `0190-${String(n).padStart(6, "0")}`,
    );
    ids.forEach((id, i) => {
      db2.prepare("INSERT INTO bodies VALUES (?, ?, 'x', '1', 1, 'p', 1)").run(i + 1, id);
      db2.prepare("INSERT INTO entries VALUES (?, 1, ?, 0, NULL, 0, NULL)").run(i + 1, i + 1);
    });
    db2.prepare("INSERT INTO queues VALUES (1, '/', 'c:a', ?)").run(ids.length);
    db2.pragma("user_version = 2");
    db2.close();
    store = SqliteStore.open({ file: old, sync: "normal" });
    expect(column("SELECT ordered FROM segments ORDER BY id")).toEqual([1, 0, 0]);
    expect(await store.ack("/", "a", ["0190-005000", "0190-005002", "0190-009005", "0190-000001"])).toEqual([
      "0190-005000",
      "0190-005002",
      "0190-009005",
      "0190-000001",
    ]);
    expect(await store.ack("/", "a", ["0190-005001", "0190-009011", "0190-000000"])).toEqual([]);
    expect(await store.pending("/", "a", 1)).toBe(ids.length - 4);
    const order = await claimAll("a");
    expect(order.messages.map((m) => m.messageId)).toEqual(
      ids.filter((id) => !/5000|5002|9005|000001/.test(id)),
    );
    await store.close();
    store = SqliteStore.open({ file, sync: "full" });
  });

  it("migrates a version 2 file: entries become segments with their leases, dead letters keep their message", async () => {
    await store.close();
    const old = join(dir, "v2.db");
    const Database = (await import("better-sqlite3")).default;
    const db2 = new Database(old);
    db2.exec(`
      ${V2_SCHEMA}
      INSERT INTO queues VALUES (1, '/', 'c:a', 3);
      INSERT INTO bodies VALUES (1, '0190-000001', 'x', '{"i":1}', 1, 'p', 1), (2, '0190-000002', 'x', NULL, 1, NULL, 1),
        (3, '0190-000003', 'y', '[3]', 1, 'p', 1), (4, '0190-000004', 'x', '"dead"', 1, 'p', 1);
      INSERT INTO entries VALUES (1, 1, 1, 2, 'a', 500, NULL), (2, 1, 2, 0, NULL, 0, 900), (3, 1, 3, 0, NULL, 0, NULL);
      INSERT INTO dead VALUES (1, 1, 4, 5, 'max-deliveries', 7);
    `);
    db2.pragma("user_version = 2");
    db2.close();
    store = SqliteStore.open({ file: old, sync: "normal" });
    expect(store.db.pragma("user_version", { simple: true })).toBe(4);
    expect(await store.pending("/", "a", 1)).toBe(3);
    const r = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 10,
      now: 100,
      leaseMs: 10,
      maxDeliveries: 0,
    });
    expect(r.messages.map((m) => [m.messageId, m.payload, m.from, m.deliveries])).toEqual([
      ["0190-000002", null, null, 1],
      ["0190-000003", [3], "p", 1],
    ]);
    expect(
      (
        await store.claim({
          ns: "/",
          queue: clientQueue("a"),
          consumer: "a",
          limit: 10,
          now: 600,
          leaseMs: 10,
          maxDeliveries: 0,
        })
      ).messages.map((m) => [m.messageId, m.deliveries]),
    ).toEqual([
      ["0190-000001", 3],
      ["0190-000002", 2],
      ["0190-000003", 2],
    ]);
    expect(await store.sweep(1000)).toBe(1); // message 2's TTL (900) was kept
    expect((await store.listDead("/", { limit: 10 })).items).toMatchObject([
      { messageId: "0190-000004", payload: "dead", deliveries: 5, reason: "max-deliveries" },
    ]);
    expect(count("sqlite_master WHERE name IN ('entries', 'bodies', 'dead_v2')")).toBe(0);
    await store.close();
    store = SqliteStore.open({ file, sync: "full" });
  });

  it("refuses a file of schema version 1 (a development format) with a clear message", async () => {
    await store.close();
    const old = join(dir, "v1.db");
    const Database = (await import("better-sqlite3")).default;
    const db1 = new Database(old);
    db1.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID");
    db1.pragma("user_version = 1");
    db1.close();
    expect(() => SqliteStore.open({ file: old, sync: "normal" })).toThrow(/schema version 1.*move it aside/);
    store = SqliteStore.open({ file, sync: "full" });
  });

  it("one write's refusal does not undo the others of its batch", async () => {
    const limits = { maxQueueLength: 1, overflow: "reject" as const };
    const before = store.commits;
    const results = await Promise.allSettled([
      store.enqueue(req(1, limits)),
      store.enqueue(req(2, limits)), // QUEUE_FULL
      store.enqueue(req(3, { ...limits, messages: [message(3, { to: ["b"] })] })),
    ]);
    expect(store.commits - before).toBe(1);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(StoreError);
    expect(await store.pending("/", "a", 1)).toBe(1);
    expect(await store.pending("/", "b", 1)).toBe(1);
  });

  it("disk full: the write rejects with UNAVAILABLE, nothing is stored, and it recovers", async () => {
    await store.enqueue(req(0));
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    const pages = store.db.pragma("page_count", { simple: true }) as number;
    store.db.pragma(`max_page_count = ${pages}`);
    const big = message(1, { payload: "x".repeat(200_000) });
    let caught: unknown;
    try {
      await store.enqueue({ ...req(1), messages: [big] });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect((caught as StoreError).code).toBe("UNAVAILABLE");
    expect((caught as StoreError).message).toContain(file);
    expect(await store.pending("/", "a", 1)).toBe(1);
    store.db.pragma("max_page_count = 1073741823");
    await store.enqueue({ ...req(1), messages: [big] });
    expect(await store.pending("/", "a", 1)).toBe(2);
  });

  it("a failed commit rejects the whole batch with UNAVAILABLE and leaves nothing half-written", async () => {
    await store.subscribe("/", "s", ["x"], null);
    // A deferred foreign key violated by a temp trigger makes COMMIT itself fail.
    store.db.pragma("foreign_keys = ON");
    store.db.exec(`
      CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY);
      CREATE TEMP TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TEMP TRIGGER break_commit AFTER INSERT ON main.chunks BEGIN INSERT INTO child VALUES (42); END;
    `);
    const before = store.commits;
    const results = await Promise.allSettled([
      store.subscribe("/", "t", ["x"], null),
      store.enqueue(req(1)),
      store.enqueue(req(2)),
    ]);
    expect(store.commits).toBe(before);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const reason = (r as PromiseRejectedResult).reason as StoreError;
      expect(reason).toBeInstanceOf(StoreError);
      expect(reason.code).toBe("UNAVAILABLE");
    }
    expect(await store.pending("/", "a", 1)).toBe(0);
    expect((await store.subscriptions({ limit: 10 })).items.map((s) => s.clientId)).toEqual(["s"]);
    store.db.exec("DROP TRIGGER temp.break_commit");
    await store.enqueue(req(3));
    expect(await store.pending("/", "a", 1)).toBe(1);
    expect(await store.healthy()).toBe(true);
  });

  it("close() commits the writes still queued", async () => {
    const p = store.enqueue(req(1));
    await store.close();
    await expect(p).resolves.toMatchObject({ queues: [clientQueue("a")] });
    store = SqliteStore.open({ file, sync: "full" });
    expect(await store.pending("/", "a", 1)).toBe(1);
  });

  it("claim reads only what it needs from a long queue", async () => {
    const messages = Array.from({ length: 5000 }, (_, i) => message(i));
    await store.enqueue({ ...req(0), messages });
    const plan = (sql: string) => {
      const stmt = store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const params = Array((sql.match(/\?/g) ?? []).length).fill(1);
      return (stmt.all(...params) as { detail: string }[]).map((p) => p.detail).join("\n");
    };
    const plans = () => ({
      page: plan(SQL.segmentPage),
      byId: plan(SQL.segmentsById),
      byIdUnordered: plan(SQL.segmentsByIdUnordered),
      highest: plan(SQL.segmentsHighest),
      leased: plan(SQL.segmentsLeased),
      expired: plan(SQL.segmentsExpired),
    });
    const before = plans();
    store.db.exec("ANALYZE"); // still with statistics
    for (const p of [before, plans()]) {
      expect(p.page).toMatch(/segments_queue \(queue_id=\? AND rowid>\?\)/);
      expect(p.page).not.toMatch(/TEMP B-TREE/);
      expect(p.byId).toMatch(/segments_ids \(queue_id=\? AND ordered=\? AND last_id>\?\)/);
      expect(p.byIdUnordered).toMatch(/segments_ids \(queue_id=\? AND ordered=\? AND last_id>\?\)/);
      expect(p.highest).toMatch(/segments_ids/);
      expect(p.leased).toMatch(/segments_leased/);
      expect(p.expired).toMatch(/segments_expiry/);
    }
    const r = await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 3,
      now: 1,
      leaseMs: 10,
      maxDeliveries: 0,
    });
    expect(r.messages).toHaveLength(3);
  });
});

describe("SqliteStore durability", () => {
  it("keeps every acknowledged write when the process is killed (kill -9)", async () => {
    const dir = tempDir();
    const file = join(dir, "crash.db");
    const script = join(dir, "writer.mts");
    writeFileSync(
      script,
      `import { SqliteStore } from ${JSON.stringify(join(process.cwd(), "src/store/sqlite/index.ts"))};
      const store = SqliteStore.open({ file: ${JSON.stringify(file)}, sync: "normal" });
      let n = 0;
      const writer = async () => {
        for (;;) {
          const i = n++;
          await store.enqueue({ ns: "/", messages: [{ messageId: "m" + String(i).padStart(8, "0"), event: "x",
            payload: { i }, publishedAt: 1, from: null, expiresAt: null, to: ["a"] }],
            now: 1, dedupWindowMs: 1, maxQueueLength: 0, overflow: "reject" });
          process.stdout.write(i + "\\n");
        }
      };
      for (let w = 0; w < 16; w++) writer();
      `,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: process.cwd(),
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acked = new Set<number>();
    let buffered = "";
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", () => resolve());
      child.stdout.on("data", (chunk: Buffer) => {
        const lines = (buffered + chunk.toString()).split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) acked.add(Number(line));
        if (acked.size >= 2000 && !child.killed) child.kill("SIGKILL");
      });
    });
    expect(acked.size).toBeGreaterThanOrEqual(2000);
    const store = SqliteStore.open({ file, sync: "normal" });
    try {
      const r = await store.claim({
        ns: "/",
        queue: clientQueue("a"),
        consumer: "a",
        limit: 1_000_000,
        now: 1,
        leaseMs: 1,
        maxDeliveries: 0,
      });
      const stored = new Set(r.messages.map((m) => (m.payload as { i: number }).i));
      const lost = [...acked].filter((i) => !stored.has(i));
      expect(lost).toEqual([]);
    } finally {
      await store.close();
    }
  }, 30_000);
});

describe("SqliteStore.open refuses files it cannot use", () => {
  it("a file another store has open: one writer per file, the second is refused at once", async () => {
    const file = join(tempDir(), "taken.db");
    const first = SqliteStore.open({ file, sync: "normal" });
    const t = performance.now();
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(
      /taken\.db: is locked by another process/,
    );
    expect(performance.now() - t).toBeLessThan(2000);
    await first.close();
    const again = SqliteStore.open({ file, sync: "normal" });
    await again.close();
  });

  it("a file of random bytes: throws naming the file, and leaves it untouched", () => {
    const file = join(tempDir(), "random.db");
    const bytes = randomFillSync(Buffer.alloc(16384));
    writeFileSync(file, bytes);
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(file);
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(/not a valid queuehub database/);
  });

  it("a damaged database: throws naming the file", async () => {
    const file = join(tempDir(), "damaged.db");
    const store = SqliteStore.open({ file, sync: "normal" });
    const messages = Array.from({ length: 3000 }, (_, i) => ({
      messageId: `m${i}`,
      event: "x",
      payload: "p".repeat(100),
      publishedAt: 1,
      from: null,
      expiresAt: null,
      to: ["a"],
    }));
    await store.enqueue({
      ns: "/",
      messages,
      now: 1,
      dedupWindowMs: 1,
      maxQueueLength: 0,
      overflow: "reject",
    });
    await store.close();
    const size = statSync(file).size;
    const fd = openSync(file, "r+");
    writeSync(fd, randomFillSync(Buffer.alloc(size - 8192)), 0, size - 8192, 4096); // keep page 1
    closeSync(fd);
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(file);
  });

  it("a path under a regular file: throws naming the file", () => {
    const blocker = join(tempDir(), "not-a-folder");
    writeFileSync(blocker, "x");
    const file = join(blocker, "hub.db");
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(file);
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(/writable/);
  });

  it("a folder: throws naming it", () => {
    const file = tempDir();
    expect(() => SqliteStore.open({ file, sync: "normal" })).toThrow(file);
  });

  it("another application's database, or a newer schema: throws naming the file", async () => {
    const Database = (await import("better-sqlite3")).default;
    const other = join(tempDir(), "other.db");
    const db = new Database(other);
    db.exec("CREATE TABLE t (x)");
    db.close();
    expect(() => SqliteStore.open({ file: other, sync: "normal" })).toThrow(/another application/);
    const newer = join(tempDir(), "newer.db");
    SqliteStore.open({ file: newer, sync: "normal" }).close();
    const db2 = new Database(newer);
    db2.pragma("user_version = 99");
    db2.close();
    expect(() => SqliteStore.open({ file: newer, sync: "normal" })).toThrow(/newer queuehub/);
  });
});

describe("SqliteStore views and long operations", () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;
  const STEP = 50;

  beforeEach(() => {
    dir = tempDir();
    file = join(dir, "hub.db");
    store = SqliteStore.open({ file, sync: "normal", stepSegments: STEP });
  });
  afterEach(async () => {
    await store.close();
  });

  const msg = (i: number, extra: Partial<NewMessage> = {}): NewMessage => ({
    messageId: `0190-${String(i).padStart(7, "0")}`,
    event: "x",
    payload: { i },
    publishedAt: 1,
    from: null,
    expiresAt: null,
    ...extra,
  });
  const enqueue = (messages: NewMessage[], extra: Partial<EnqueueRequest> = {}) =>
    store.enqueue({
      ns: "/",
      messages,
      now: 1,
      dedupWindowMs: 1000,
      maxQueueLength: 0,
      overflow: "reject",
      ...extra,
    });
  /** `segments` one-message segments in a's queue, events alternating x, y. */
  const longQueue = async (segments: number) => {
    await store.subscribe("/", "a", ["x", "y"], null);
    await Promise.all(
      Array.from({ length: segments }, (_, i) => enqueue([msg(i, { event: i % 2 ? "y" : "x" })])),
    );
  };
  /** Turns of the event loop while `work` runs: each step of a long operation lets others in. */
  const turnsDuring = async <T>(work: Promise<T>) => {
    let turns = 0;
    let done = false;
    const tick = () => {
      if (done) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const value = await work;
    done = true;
    return { value, turns };
  };
  const plan = (sql: string) => {
    const stmt = store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
    const params = Array((sql.match(/\?/g) ?? []).length).fill(1);
    return (stmt.all(...params) as { detail: string }[]).map((p) => p.detail).join("\n");
  };

  it("every view reads one index range per page, and long work one index range per step", async () => {
    await longQueue(200);
    await store.joinRoom("/", "r", "a");
    const expected: [keyof typeof SQL, RegExp][] = [
      ["namespacesPage", /namespaces USING PRIMARY KEY \(ns>\?\)/],
      ["queuesPageNs", /queues USING INDEX sqlite_autoindex_queues_1 \(ns=\? AND name>\?\)/],
      ["subsPageNs", /s USING INDEX subs_ns \(ns=\? AND id>\?\)/],
      ["roomsPage", /rooms USING INDEX sqlite_autoindex_rooms_1 \(ns=\? AND name>\?\)/],
      ["membersPage", /room_members USING PRIMARY KEY \(room_id=\? AND client_id>\?\)/],
      ["deadPage", /d USING INDEX dead_ns \(ns=\? AND id>\?\)/],
      ["clientRooms", /m USING COVERING INDEX room_members_client \(client_id=\?\)/],
      ["segmentsStep", /segments_queue \(queue_id=\? AND rowid>\? AND rowid<\?\)/],
      ["segmentsLeasedStep", /segments_leased \(queue_id=\? AND rowid>\? AND rowid<\?\)/],
      ["dedupGet", /dedup USING PRIMARY KEY \(ns=\? AND scope=\? AND key=\?\)/],
    ];
    for (const analyzed of [false, true]) {
      if (analyzed) store.db.exec("ANALYZE"); // the same with statistics
      for (const [name, pattern] of expected) {
        const p = plan(SQL[name]);
        expect([name, p]).toEqual([name, expect.stringMatching(pattern)]);
        expect([name, p]).not.toEqual([name, expect.stringMatching(/\bSCAN\b/)]);
        // Only a client's own rooms (as many as the hub lets it join) are sorted.
        if (name !== "clientRooms")
          expect([name, p]).not.toEqual([name, expect.stringMatching(/TEMP B-TREE/)]);
      }
    }
  });

  it("at 30,000 rows a view still reads a page by its index: every row once, in order", async () => {
    const N = 30_000;
    const clients = Array.from({ length: N }, (_, i) => `c${String(i).padStart(5, "0")}`);
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(clients.slice(i, i + 1000).map((c) => store.subscribe("/big", c, ["e"], null)));
      await Promise.all(clients.slice(i, i + 1000).map((c) => store.joinRoom("/big", "hall", c)));
    }
    await store.enqueue({
      ns: "/big",
      messages: [msg(1, { event: "e", to: clients })],
      now: 1,
      dedupWindowMs: 1000,
      maxQueueLength: 0,
      overflow: "reject",
    });
    const walk = async <T>(view: (after: string | null) => Promise<{ items: T[]; next: string | null }>) => {
      const items: T[] = [];
      let after: string | null = null;
      let pages = 0;
      do {
        const page: { items: T[]; next: string | null } = await view(after);
        items.push(...page.items);
        after = page.next;
        pages++;
      } while (after !== null);
      return { items, pages };
    };
    const subs = await walk((after) => store.subscriptions({ limit: 1000, after }, "/big"));
    expect(subs.items.map((s) => s.clientId)).toEqual(clients);
    expect(subs.pages).toBe(N / 1000);
    const queues = await walk((after) => store.stats({ limit: 1000, after }, "/big"));
    expect(queues.items.map((q) => q.queue)).toEqual(clients.map(clientQueue));
    const members = await walk((after) => store.roomMembers("/big", "hall", { limit: 1000, after }));
    expect(members.items).toEqual(clients);
    expect((await store.namespaces({ limit: 10 })).items).toEqual([
      { ns: "/big", queues: N, pending: N, subscriptions: N, rooms: 1, deadLetters: 0 },
    ]);
    // the same plans as on an empty file (see above)
    expect(plan(SQL.subsPageNs)).toMatch(/subs_ns \(ns=\? AND id>\?\)/);
    expect(plan(SQL.queuesPageNs)).toMatch(/sqlite_autoindex_queues_1 \(ns=\? AND name>\?\)/);
  });

  it("unsubscribe over a long queue drops in steps of at most stepSegments segments, each its own commit", async () => {
    await longQueue(2000);
    const before = store.commits;
    const { value: dropped, turns } = await turnsDuring(store.unsubscribe("/", "a", ["x"]));
    expect(dropped).toBe(1000);
    expect(store.commits - before).toBeGreaterThanOrEqual(2000 / STEP);
    expect(turns).toBeGreaterThanOrEqual(2000 / STEP);
    expect(await store.pending("/", "a", 1, "y")).toBe(1000);
    expect(await store.pending("/", "a", 1, "x")).toBe(0);
  });

  it("a count by event over a long queue reads in steps, the event loop free between them", async () => {
    await longQueue(2000);
    const { value, turns } = await turnsDuring(store.pending("/", "a", 1, "y"));
    expect(value).toBe(1000);
    expect(turns).toBeGreaterThanOrEqual(2000 / STEP - 1);
  });

  it("drop-oldest far below a long backlog cuts it back in steps, each its own commit", async () => {
    await longQueue(2000);
    const before = store.commits;
    const { value, turns } = await turnsDuring(
      enqueue([msg(5000)], { maxQueueLength: 10, overflow: "drop-oldest" }),
    );
    expect(value.dropped).toBe(1991);
    expect(store.commits - before).toBeGreaterThanOrEqual(Math.floor(1991 / STEP));
    expect(turns).toBeGreaterThanOrEqual(Math.floor(1991 / STEP));
    expect(await store.pending("/", "a", 1)).toBe(10);
    expect((await store.namespaces({ limit: 1 })).items[0]).toMatchObject({ pending: 10, deadLetters: 1991 });
  });

  it("the namespace counts always equal a recount: after refused writes, a failed batch and a reopen", async () => {
    const recount = () =>
      store.db
        .prepare(
          `SELECT ns, sum(queues) AS queues, sum(pending) AS pending, sum(subscriptions) AS subscriptions,
            sum(rooms) AS rooms, sum(dead) AS deadLetters FROM (
            SELECT ns, count(*) AS queues, sum(size) AS pending, 0 AS subscriptions, 0 AS rooms, 0 AS dead
              FROM queues WHERE size > 0 GROUP BY ns
            UNION ALL SELECT ns, 0, 0, count(*), 0, 0 FROM subs GROUP BY ns
            UNION ALL SELECT ns, 0, 0, 0, count(*), 0 FROM rooms GROUP BY ns
            UNION ALL SELECT ns, 0, 0, 0, 0, count(*) FROM dead GROUP BY ns
          ) GROUP BY ns ORDER BY ns`,
        )
        .all();
    const counted = async () => (await store.namespaces({ limit: 100 })).items;
    await store.subscribe("/", "a", ["x"], null);
    await store.subscribe("/caps", "b", ["x"], "g");
    await store.joinRoom("/caps", "r", "b");
    await enqueue([msg(1), msg(2)]);
    await enqueue([msg(3)], { ns: "/caps" });
    expect(await counted()).toEqual(recount());
    // a refused write in a batch: its counts go with it, the others' stay
    const limits = { maxQueueLength: 2, overflow: "reject" as const };
    const results = await Promise.allSettled([
      enqueue([msg(4)], limits),
      store.subscribe("/", "c", ["x"], null),
      store.joinRoom("/", "r2", "c"),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect(await counted()).toEqual(recount());
    // a failed batch (the disk is full): nothing of it is counted
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    store.db.pragma(`max_page_count = ${store.db.pragma("page_count", { simple: true })}`);
    await expect(
      Promise.all([
        enqueue([msg(5, { payload: "x".repeat(100_000) })], { ns: "/caps" }),
        store.subscribe("/", "d", ["x"], null),
      ]),
    ).rejects.toMatchObject({ code: "UNAVAILABLE" });
    store.db.pragma("max_page_count = 1073741823");
    expect(await counted()).toEqual(recount());
    await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 1,
      now: 1,
      leaseMs: 1,
      maxDeliveries: 1,
    });
    await store.claim({
      ns: "/",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 9,
      now: 5,
      leaseMs: 1,
      maxDeliveries: 1,
    });
    await store.ack("/caps", "b", ["nothing"]);
    await store.leaveRoom("/caps", "r", "b");
    await store.close();
    store = SqliteStore.open({ file, sync: "normal" });
    expect(await counted()).toEqual(recount());
    expect(await counted()).toEqual([
      { ns: "/", queues: 1, pending: 1, subscriptions: 2, rooms: 1, deadLetters: 1 },
      { ns: "/caps", queues: 1, pending: 1, subscriptions: 1, rooms: 0, deadLetters: 0 },
    ]);
  });

  it("migrates a version 3 file: subscriptions, queues, dead letters and counts by namespace; old keys still count", async () => {
    await store.close();
    const v3 = join(dir, "v3.db");
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(v3);
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
      CREATE TABLE queues (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, UNIQUE (ns, name));
      CREATE TABLE events (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, event TEXT NOT NULL, UNIQUE (ns, event));
      CREATE TABLE subs (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, client_id TEXT NOT NULL, grp TEXT, UNIQUE (event_id, client_id));
      CREATE INDEX subs_client ON subs (client_id);
      CREATE TABLE dedup (ns TEXT NOT NULL, key TEXT NOT NULL, ids TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
      CREATE INDEX dedup_expiry ON dedup (expires_at);
      CREATE TABLE chunks (id INTEGER PRIMARY KEY, data TEXT NOT NULL, refs INTEGER NOT NULL);
      CREATE TABLE segments (id INTEGER PRIMARY KEY AUTOINCREMENT, queue_id INTEGER NOT NULL, chunk INTEGER NOT NULL,
        members TEXT, leased INTEGER NOT NULL DEFAULT 0, expires_at INTEGER, ordered INTEGER NOT NULL,
        first_id TEXT NOT NULL, last_id TEXT NOT NULL);
      CREATE INDEX segments_queue ON segments (queue_id);
      CREATE INDEX segments_ids ON segments (queue_id, ordered, last_id, first_id);
      CREATE INDEX segments_leased ON segments (queue_id) WHERE leased > 0;
      CREATE INDEX segments_expiry ON segments (expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE dead (id INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, message_id TEXT NOT NULL, event TEXT NOT NULL,
        payload TEXT, published_at INTEGER NOT NULL, sender TEXT, deliveries INTEGER NOT NULL, reason TEXT NOT NULL,
        dead_at INTEGER NOT NULL);
      CREATE INDEX dead_message_id ON dead (message_id);
      INSERT INTO queues VALUES (1, '/caps', 'c:a', 2), (2, '/caps', 'g:g', 1), (3, '/', 'c:z', 0);
      INSERT INTO events VALUES (1, '/caps', 'x'), (2, '/', 'y');
      INSERT INTO subs VALUES (1, 1, 'a', NULL), (2, 1, 'b', 'g'), (3, 2, 'z', NULL);
      INSERT INTO chunks VALUES (1, '[["0190-1","x",{"n":1},5,"pub",null],["0190-2","x",{"n":2},5,"pub",null]]', 2);
      INSERT INTO segments (queue_id, chunk, members, ordered, first_id, last_id) VALUES
        (1, 1, NULL, 1, '0190-1', '0190-2'), (2, 1, '[1,0,null,0]', 1, '0190-1', '0190-2');
      INSERT INTO dead VALUES (1, 3, '0190-0', 'y', '{"n":0}', 1, 'pub', 3, 'max-deliveries', 9);
    `);
    const window = Date.now() + 60_000;
    db.prepare("INSERT INTO dedup VALUES ('/caps', 'k1', '[\"0190-1\",\"0190-2\"]', ?)").run(window);
    db.pragma("user_version = 3");
    db.close();

    store = SqliteStore.open({ file: v3, sync: "normal" });
    expect(store.db.pragma("user_version", { simple: true })).toBe(4);
    expect((await store.subscriptions({ limit: 10 })).items).toEqual([
      { ns: "/", clientId: "z", event: "y", group: null },
      { ns: "/caps", clientId: "a", event: "x", group: null },
      { ns: "/caps", clientId: "b", event: "x", group: "g" },
    ]);
    expect((await store.subscriptions({ limit: 10 }, "/")).items).toHaveLength(1);
    expect((await store.namespaces({ limit: 10 })).items).toEqual([
      { ns: "/", queues: 0, pending: 0, subscriptions: 1, rooms: 0, deadLetters: 1 },
      { ns: "/caps", queues: 2, pending: 3, subscriptions: 2, rooms: 0, deadLetters: 0 },
    ]);
    expect((await store.listDead("/", { limit: 10 })).items).toEqual([
      expect.objectContaining({
        ns: "/",
        queue: "c:z",
        messageId: "0190-0",
        payload: { n: 0 },
        deliveries: 3,
      }),
    ]);
    const claimed = await store.claim({
      ns: "/caps",
      queue: clientQueue("a"),
      consumer: "a",
      limit: 9,
      now: 1,
      leaseMs: 10,
      maxDeliveries: 0,
    });
    expect(claimed.messages.map((m) => m.messageId)).toEqual(["0190-1", "0190-2"]);
    // a namespace-wide key of the old file still counts, whoever retries it, until its window ends
    const retry = await store.enqueue({
      ns: "/caps",
      messages: [msg(9, { to: ["a"] })],
      key: { scope: "id:anyone", key: "k1" },
      now: Date.now(),
      dedupWindowMs: 1000,
      maxQueueLength: 0,
      overflow: "reject",
    });
    expect(retry).toMatchObject({ duplicate: true, messageIds: ["0190-1", "0190-2"] });
    await store.sweep(window + 1);
    expect(store.db.prepare("SELECT name FROM sqlite_master WHERE name = 'dedup_v3'").get()).toBeUndefined();
    const after = await store.enqueue({
      ns: "/caps",
      messages: [msg(10, { to: ["a"] })],
      key: { scope: "id:anyone", key: "k1" },
      now: window + 2,
      dedupWindowMs: 1000,
      maxQueueLength: 0,
      overflow: "reject",
    });
    expect(after.duplicate).toBe(false);
  });
});
