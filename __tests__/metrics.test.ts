// /metrics through prom-client, scraped over HTTP: the hub's counters, the publish-to-delivery
// histogram, queue depth, in-flight and connection gauges, process and event-loop metrics; a
// registry of each hub's own, or the host's.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Counter, Registry } from "prom-client";
import { Server } from "socket.io";
import { attachHub } from "../src/hub.js";
import { MemoryStore } from "../src/store/memory.js";
import { SqliteStore } from "../src/store/sqlite/index.js";
import { startHub, type TestContext } from "./support/hub.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-metrics-"));
const contexts: TestContext[] = [];
afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function hub(...args: Parameters<typeof startHub>) {
  const ctx = await startHub(...args);
  contexts.push(ctx);
  return ctx;
}

/** The samples of a Prometheus text page, by name with labels as written (`x{code="A"}`). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) out.set(match[1] as string, Number(match[2]));
  }
  return out;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return samples(await res.text());
}

test("a scrape has the counters, latency histogram, gauges, and process and event-loop metrics", async () => {
  const ctx = await hub({ maxPayloadBytes: 100 });
  const sub = await ctx.client("/caps", { clientId: "sub" });
  const pub = await ctx.client("/caps", { clientId: "pub" });
  await sub.request("subscribe", { event: "e" });
  expect(await pub.request("e", 1)).toMatchObject({ ok: true });
  expect(await pub.request("e", "x".repeat(200))).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
  await sub.received(1);

  let m = await scrape(ctx.url);
  expect(m.get("queuehub_published_total")).toBe(1);
  expect(m.get("queuehub_delivered_total")).toBe(1);
  expect(m.get("queuehub_redelivered_total")).toBe(0);
  expect(m.get('queuehub_refused_total{code="PAYLOAD_TOO_LARGE"}')).toBe(1);
  expect(m.get('queuehub_refused_total{code="RATE_LIMITED"}')).toBe(0);
  expect(m.get("queuehub_connections")).toBe(2);
  expect(m.get("queuehub_in_flight")).toBe(1);
  expect(m.get('queuehub_queue_depth{ns="/caps"}')).toBe(1);
  expect(m.get('queuehub_dead_letters{ns="/caps"}')).toBe(0);
  // One first delivery observed, well under a minute after its publish.
  expect(m.get("queuehub_delivery_latency_seconds_count")).toBe(1);
  expect(m.get('queuehub_delivery_latency_seconds_bucket{le="60"}')).toBe(1);
  expect(m.get('queuehub_delivery_latency_seconds_bucket{le="+Inf"}')).toBe(1);
  // prom-client's default metrics: process and Node.js, event-loop delay included.
  for (const name of [
    "process_cpu_user_seconds_total",
    "process_resident_memory_bytes",
    "nodejs_eventloop_lag_p99_seconds",
    "nodejs_heap_size_used_bytes",
  ]) {
    expect([name, m.has(name)]).toEqual([name, true]);
  }

  expect(await sub.ackAll()).toBe(1);
  m = await scrape(ctx.url);
  expect(m.get("queuehub_acked_total")).toBe(1);
  expect(m.get("queuehub_in_flight")).toBe(0);
  expect(m.get('queuehub_queue_depth{ns="/caps"}') ?? 0).toBe(0);
  sub.close();
  let connections = 2;
  const deadline = Date.now() + 3000;
  while (connections !== 1 && Date.now() < deadline) {
    connections = (await scrape(ctx.url)).get("queuehub_connections") ?? -1;
  }
  expect(connections).toBe(1);
});

test("queue depth is the store's count per namespace: fan-out, acks, unsubscribes, and the backlog a new hub finds", async () => {
  const file = join(dir, "depth.db");
  const first = await hub({}, SqliteStore.open({ file, sync: "normal" }));
  const pub = await first.client("/", { clientId: "pub" });
  for (const id of ["a", "b", "c"]) {
    const c = await first.client("/", { clientId: id });
    await c.request("subscribe", { event: id === "c" ? "other" : "e" });
    c.close();
  }
  // Two subscribers of "e": 2 entries per message; one more addressed by `to`.
  await pub.request("e", 1);
  await pub.request("publish", [
    { event: "e", payload: 2 },
    { event: "e", payload: 3 },
  ]);
  await pub.request("publish", { event: "e", payload: 4, to: ["c"] });
  expect((await scrape(first.url)).get('queuehub_queue_depth{ns="/"}')).toBe(7);
  await first.close();
  contexts.splice(0);

  // A new hub on the same file starts from the backlog it finds.
  const second = await hub({}, SqliteStore.open({ file, sync: "normal" }));
  expect((await scrape(second.url)).get('queuehub_queue_depth{ns="/"}')).toBe(7);
  const a = await second.client("/", { clientId: "a" });
  await a.received(3);
  expect(await a.ackAll()).toBe(3);
  expect((await scrape(second.url)).get('queuehub_queue_depth{ns="/"}')).toBe(4);
  const b = await second.client("/", { clientId: "b" });
  expect(await b.request("unsubscribe", { event: "e" })).toEqual({ ok: true });
  expect((await scrape(second.url)).get('queuehub_queue_depth{ns="/"}')).toBe(1);
});

test("two hubs in one process keep their metrics apart", async () => {
  const one = await hub();
  const two = await hub();
  const pub = await one.client("/", { clientId: "pub" });
  await pub.request("publish", { event: "e", payload: 1, to: "x" });
  expect((await scrape(one.url)).get("queuehub_published_total")).toBe(1);
  expect((await scrape(two.url)).get("queuehub_published_total")).toBe(0);
});

test("a host's registry gets the hub's metrics beside its own; one hub per registry; close takes them off", async () => {
  const registry = new Registry();
  const mine = new Counter({ name: "host_requests_total", help: "The host's own.", registers: [registry] });
  mine.inc(5);
  const io = new Server(createServer());
  const options = { namespaces: ["/caps"], logLevel: "silent" as const, registry };
  const attached = await attachHub(io, { ...options, queueStore: new MemoryStore() });
  try {
    const m = samples(await registry.metrics());
    expect(m.get("host_requests_total")).toBe(5);
    expect(m.get("queuehub_published_total")).toBe(0);
    expect(m.has("process_cpu_user_seconds_total")).toBe(true);
    await expect(attachHub(io, { ...options, queueStore: new MemoryStore() })).rejects.toThrow(
      /registry has queuehub's metrics already/,
    );
  } finally {
    await attached.close();
  }
  expect(samples(await registry.metrics()).has("queuehub_published_total")).toBe(false);
  // Detached, the same registry takes a new hub (the default metrics are not registered twice).
  const again = await attachHub(io, { ...options, queueStore: new MemoryStore() });
  await again.close();
  await io.close();
});
