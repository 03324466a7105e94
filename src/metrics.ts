// Prometheus metrics through prom-client. Each hub registers on a registry of its own by default
// (never prom-client's global one, so two hubs in one process do not clash), or on one the host
// passes in. Counters are counted where things happen; gauges are read at scrape time from values
// the hub keeps, and from the counts the store keeps per namespace: a scrape never walks the queues.
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { Logger } from "./log.js";
import { ERROR_CODES } from "./protocol.js";
import type { NamespaceSummary } from "./store/store.js";

/** What the gauges read at scrape time: cheap values the hub keeps. */
export interface GaugeSources {
  /** Connected sockets in the queue's namespaces. */
  connections(): number;
  /** Deliveries sent and not yet acked, over every connection. */
  inFlight(): number;
  /** The store's counts per namespace (an aggregate it keeps, not a read of every queue). */
  namespaces(): Promise<NamespaceSummary[]>;
  log: Logger;
}

export class HubMetrics {
  readonly published: Counter;
  readonly delivered: Counter;
  readonly redelivered: Counter;
  readonly acked: Counter;
  readonly expired: Counter;
  readonly deadLettered: Counter;
  readonly dropped: Counter;
  readonly refused: Counter<"code">;
  /** Seconds from a publish being stored to the message's first delivery. */
  readonly deliveryLatency: Histogram;

  /** Counters and the histogram, on no registry until `register`. */
  constructor() {
    const counter = (name: string, help: string) => new Counter({ name, help, registers: [] });
    this.published = counter("queuehub_published_total", "Messages stored by publishes.");
    this.delivered = counter("queuehub_delivered_total", "Deliveries sent, first sends and redeliveries.");
    this.redelivered = counter(
      "queuehub_redelivered_total",
      "Deliveries sent again after an ack timeout or a reconnect.",
    );
    this.acked = counter("queuehub_acked_total", "Queue entries removed by acks.");
    this.expired = counter("queuehub_expired_total", "Queue entries removed because their TTL passed.");
    this.deadLettered = counter(
      "queuehub_dead_lettered_total",
      "Queue entries moved to dead letters after max deliveries.",
    );
    this.dropped = counter(
      "queuehub_dropped_total",
      "Queue entries dropped (to dead letters) by the drop-oldest overflow policy.",
    );
    this.refused = new Counter({
      name: "queuehub_refused_total",
      help: "Requests refused, by error code.",
      labelNames: ["code"],
      registers: [],
    });
    // Every code from the start at 0, so rate() sees the first refusal of each.
    for (const code of ERROR_CODES) this.refused.inc({ code }, 0);
    this.deliveryLatency = new Histogram({
      name: "queuehub_delivery_latency_seconds",
      help: "From a publish being stored to the message's first delivery, including time queued for an offline client.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [],
    });
  }

  /**
   * Puts the hub's metrics on `registry`, with gauges read from `sources` and, unless the registry
   * has them already, prom-client's default process and Node.js metrics (CPU, memory, handles,
   * event-loop delay from `perf_hooks.monitorEventLoopDelay`).
   */
  register(registry: Registry, sources: GaugeSources): void {
    if (registry.getSingleMetric("queuehub_published_total")) {
      throw new Error(
        "this prom-client registry has queuehub's metrics already: give each hub a registry of its own (Registry.merge joins them for one /metrics)",
      );
    }
    for (const metric of [
      this.published,
      this.delivered,
      this.redelivered,
      this.acked,
      this.expired,
      this.deadLettered,
      this.dropped,
      this.refused,
      this.deliveryLatency,
    ]) {
      registry.registerMetric(metric);
    }
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    gauge("queuehub_connections", "Connected sockets in the queue's namespaces.", sources.connections);
    gauge(
      "queuehub_in_flight",
      "Deliveries sent and not yet acked, over every connection.",
      sources.inFlight,
    );
    // One read of the store's counts serves both gauges (a registry collects its metrics at once,
    // so the second joins the first's read). A store that cannot answer (Redis down) leaves them
    // empty for this scrape rather than failing it.
    let reading: Promise<void> | null = null;
    const readNamespaces = () => {
      reading ??= (async () => {
        depth.reset();
        dead.reset();
        try {
          for (const summary of await sources.namespaces()) {
            depth.set({ ns: summary.ns }, summary.pending);
            dead.set({ ns: summary.ns }, summary.deadLetters);
          }
        } catch (err) {
          sources.log.debug({ err }, "metrics: the store's counts could not be read");
        }
      })().finally(() => {
        reading = null;
      });
      return reading;
    };
    const depth = new Gauge({
      name: "queuehub_queue_depth",
      help: "Entries in the namespace's queues, in flight or not (the store's count, shared by a cluster's hubs).",
      labelNames: ["ns"],
      registers: [registry],
      collect: readNamespaces,
    });
    const dead = new Gauge({
      name: "queuehub_dead_letters",
      help: "Dead letters kept in the namespace (the store's count).",
      labelNames: ["ns"],
      registers: [registry],
      collect: readNamespaces,
    });
    if (!registry.getSingleMetric("process_cpu_seconds_total")) collectDefaultMetrics({ register: registry });
  }

  /** Takes the hub's own metrics off `registry` again (a detached hub's counters would only mislead). */
  unregister(registry: Registry): void {
    for (const metric of registry.getMetricsAsArray()) {
      if (metric.name.startsWith("queuehub_")) registry.removeSingleMetric(metric.name);
    }
  }
}
