// Counts per namespace (the `namespaces` table), so that the namespaces view reads one row per
// namespace instead of counting. Each write adds to them in memory; a write that is rolled back
// takes its additions with it; the batch's sum is written once, just before its COMMIT.
import type Database from "better-sqlite3";

export type CountName = "queues" | "pending" | "subscriptions" | "rooms" | "dead";
type Counts = Record<CountName, number>;

const zero = (): Counts => ({ queues: 0, pending: 0, subscriptions: 0, rooms: 0, dead: 0 });

export class NamespaceCounts {
  /** What the running write added, by namespace. */
  private write = new Map<string, Counts>();
  /** What the batch's kept writes added, by namespace. */
  private batch = new Map<string, Counts>();

  constructor(private readonly upsert: Database.Statement<unknown[], unknown>) {}

  add(ns: string, name: CountName, n: number) {
    if (n === 0) return;
    let counts = this.write.get(ns);
    if (counts === undefined) {
      counts = zero();
      this.write.set(ns, counts);
    }
    counts[name] += n;
  }

  /** The running write is kept (its savepoint released). */
  keepWrite() {
    for (const [ns, counts] of this.write) {
      const sum = this.batch.get(ns);
      if (sum === undefined) {
        this.batch.set(ns, counts);
        continue;
      }
      for (const name of Object.keys(counts) as CountName[]) sum[name] += counts[name];
    }
    this.write.clear();
  }

  /** The running write was rolled back; with `batch`, the whole batch was. */
  forget(batch: boolean) {
    this.write.clear();
    if (batch) this.batch.clear();
  }

  /** Stores the batch's sums: one row per namespace touched. */
  flush() {
    for (const [ns, c] of this.batch)
      this.upsert.run(ns, c.queues, c.pending, c.subscriptions, c.rooms, c.dead);
    this.batch.clear();
  }
}
