// Counts per namespace (the `namespaces` table), so that the namespaces view reads one row per
// namespace instead of counting. Each write adds to the batch's sums in memory (no allocation on
// the way: a publish or an ack pays a few map lookups); a write that is rolled back takes its
// additions back; the sums are written once, just before the batch's COMMIT.
import type Database from "better-sqlite3";

export type CountName = "queues" | "pending" | "subscriptions" | "rooms" | "dead";
type Counts = Record<CountName, number>;

const zero = (): Counts => ({ queues: 0, pending: 0, subscriptions: 0, rooms: 0, dead: 0 });

export class NamespaceCounts {
  /** What the batch's writes added, by namespace. */
  private readonly batch = new Map<string, Counts>();
  /** What the running write added, to take back if it is rolled back (three lists side by side). */
  private readonly undoCounts: Counts[] = [];
  private readonly undoNames: CountName[] = [];
  private readonly undoN: number[] = [];

  constructor(private readonly upsert: Database.Statement<unknown[], unknown>) {}

  add(ns: string, name: CountName, n: number) {
    if (n === 0) return;
    let counts = this.batch.get(ns);
    if (counts === undefined) {
      counts = zero();
      this.batch.set(ns, counts);
    }
    counts[name] += n;
    this.undoCounts.push(counts);
    this.undoNames.push(name);
    this.undoN.push(n);
  }

  /** The running write is kept (its savepoint released). */
  keepWrite() {
    this.clearUndo();
  }

  /** The running write was rolled back; with `batch`, the whole batch was. */
  forget(batch: boolean) {
    if (batch) this.batch.clear();
    else
      for (let i = 0; i < this.undoN.length; i++)
        (this.undoCounts[i] as Counts)[this.undoNames[i] as CountName] -= this.undoN[i] as number;
    this.clearUndo();
  }

  /** Stores the batch's sums: one row per namespace touched. */
  flush() {
    for (const [ns, c] of this.batch)
      this.upsert.run(ns, c.queues, c.pending, c.subscriptions, c.rooms, c.dead);
    this.batch.clear();
  }

  private clearUndo() {
    this.undoCounts.length = 0;
    this.undoNames.length = 0;
    this.undoN.length = 0;
  }
}
