// The SQLite store's statements, prepared once per store. Exported for the plan checks in tests.
import type Database from "better-sqlite3";

/** Segments one step of a sweep reads at most. */
export const SWEEP_SEGMENTS = 500;

const DEAD_BY_IDS = `SELECT d.id, d.queue_id AS queueId, q.name AS queue, d.message_id AS messageId,
  d.event, d.payload, d.published_at AS publishedAt, d.sender
  FROM dead d JOIN queues q ON q.id = d.queue_id
  WHERE d.message_id IN (SELECT value FROM json_each(?)) AND q.ns = ?`;
const SUBSCRIPTIONS = `SELECT ev.ns, s.client_id AS clientId, ev.event, s.grp AS "group"
  FROM subs s JOIN events ev ON ev.id = s.event_id`;

/** Every statement of the store, by name. */
export const SQL = {
  probe: "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",

  queueGet: "SELECT id FROM queues WHERE ns = ? AND name = ?",
  queueAdd: "INSERT INTO queues (ns, name) VALUES (?, ?)",
  queueSize: "SELECT size FROM queues WHERE id = ?",
  queueGrow: "UPDATE queues SET size = size + ? WHERE id = ?",

  eventGet: "SELECT id FROM events WHERE ns = ? AND event = ?",
  eventAdd: "INSERT INTO events (ns, event) VALUES (?, ?)",
  subUpsert: `INSERT INTO subs (event_id, client_id, grp) VALUES (?, ?, ?)
    ON CONFLICT (event_id, client_id) DO UPDATE SET grp = excluded.grp`,
  subGet: "SELECT grp FROM subs WHERE event_id = ? AND client_id = ?",
  subDel: "DELETE FROM subs WHERE event_id = ? AND client_id = ?",
  groupLeft: "SELECT 1 FROM subs WHERE event_id = ? AND grp = ? LIMIT 1",
  targets: `SELECT s.client_id AS clientId, s.grp FROM events ev JOIN subs s ON s.event_id = ev.id
    WHERE ev.ns = ? AND ev.event = ? ORDER BY s.id`,
  consumerGroups: `SELECT s.grp FROM subs s JOIN events ev ON ev.id = s.event_id
    WHERE s.client_id = ? AND ev.ns = ? AND s.grp IS NOT NULL AND s.grp <> ''
    GROUP BY s.grp ORDER BY min(ev.id)`,

  dedupGet: "SELECT ids, expires_at AS expiresAt FROM dedup WHERE ns = ? AND key = ?",
  dedupPut: "INSERT OR REPLACE INTO dedup (ns, key, ids, expires_at) VALUES (?, ?, ?, ?)",

  chunkAdd: "INSERT INTO chunks (data, refs) VALUES (?, ?)",
  chunkGet: "SELECT data FROM chunks WHERE id = ?",
  // Dropping a reference: delete the chunk when it was the last, else count it down.
  chunkFree: "DELETE FROM chunks WHERE id = ? AND refs <= 1",
  chunkUnref: "UPDATE chunks SET refs = refs - 1 WHERE id = ?",
  segmentAdd: `INSERT INTO segments (queue_id, chunk, expires_at, ordered, first_id, last_id)
    VALUES (?, ?, ?, ?, ?, ?)`,
  segmentsHighest: "SELECT max(last_id) FROM segments WHERE queue_id = ? AND ordered = 1",
  segmentGet: "SELECT queue_id AS queueId, chunk, members FROM segments WHERE id = ?",
  segmentSet: "UPDATE segments SET members = ?, leased = ?, expires_at = ? WHERE id = ?",
  segmentDel: "DELETE FROM segments WHERE id = ?",
  // A literal LIMIT: a bound one makes SQLite re-prepare the statement on every run.
  // Pinned: one queue's segments in order, never a scan of every queue's, whatever the statistics.
  segmentPage:
    "SELECT id FROM segments INDEXED BY segments_queue WHERE queue_id = ? AND id > ? ORDER BY id LIMIT 16",
  segmentsOf: "SELECT id FROM segments INDEXED BY segments_queue WHERE queue_id = ? ORDER BY id",
  segmentsLeased: "SELECT id FROM segments WHERE queue_id = ? AND leased > 0 ORDER BY id",
  // Segments whose id range may hold a message id. Ordered segments (ids above every earlier
  // segment's: nearly all) have rising, disjoint ranges, so the first ending at or after the id
  // decides (one more is read in case a clock stepped back); the others (requeued dead letters,
  // ids from a clock that stepped back) are few and read whole.
  segmentsById: `SELECT id, first_id AS firstId FROM segments
    WHERE queue_id = ? AND ordered = 1 AND last_id >= ? ORDER BY last_id LIMIT 2`,
  segmentsByIdUnordered: `SELECT id FROM segments
    WHERE queue_id = ? AND ordered = 0 AND last_id >= ? AND first_id <= ?`,
  segmentsExpired: `SELECT id FROM segments WHERE expires_at IS NOT NULL AND expires_at <= ?
    LIMIT ${SWEEP_SEGMENTS}`,
  sweepDedup: "DELETE FROM dedup WHERE expires_at <= ?",

  deadAdd: `INSERT INTO dead (queue_id, message_id, event, payload, published_at, sender, deliveries, reason, dead_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  deadFind: `${DEAD_BY_IDS} ORDER BY d.id`,
  deadDel: "DELETE FROM dead WHERE id = ?",
  deadDrop: `DELETE FROM dead WHERE id IN (SELECT id FROM (${DEAD_BY_IDS}))`,
  listDead: `SELECT d.message_id AS messageId, d.event, d.payload, d.published_at AS publishedAt, d.sender,
    d.deliveries, q.name AS queue, d.reason, d.dead_at AS deadAt
    FROM dead d JOIN queues q ON q.id = d.queue_id
    WHERE q.ns = ? ORDER BY d.id LIMIT ?`,

  queuesLive: "SELECT id, ns, name AS queue, size AS pending FROM queues WHERE size > 0 ORDER BY id",
  queuesLiveNs:
    "SELECT id, ns, name AS queue, size AS pending FROM queues WHERE size > 0 AND ns = ? ORDER BY id",
  subscriptions: `${SUBSCRIPTIONS}
    ORDER BY (SELECT min(e2.id) FROM events e2 WHERE e2.ns = ev.ns), ev.id, s.id`,
  subscriptionsNs: `${SUBSCRIPTIONS} WHERE ev.ns = ? ORDER BY ev.id, s.id`,
} as const;

export type Statements = { [K in keyof typeof SQL]: Database.Statement<unknown[], unknown> };

/** Statements that return one column: their rows come back as plain values. */
const PLUCKED = [
  "queueGet",
  "queueSize",
  "eventGet",
  "consumerGroups",
  "chunkGet",
  "segmentPage",
  "segmentsOf",
  "segmentsLeased",
  "segmentsByIdUnordered",
  "segmentsHighest",
  "segmentsExpired",
] as const;

export function prepareStatements(db: Database.Database): Statements {
  const s = Object.fromEntries(
    Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
  ) as Statements;
  for (const name of PLUCKED) s[name].pluck();
  return s;
}
