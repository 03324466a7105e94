// The SQLite store's statements, prepared once per store. Exported for the plan checks in tests.
import type Database from "better-sqlite3";

/** Segments one step of a sweep reads at most. */
export const SWEEP_SEGMENTS = 500;

const DEAD_BY_IDS = `SELECT d.id, d.queue_id AS queueId, q.name AS queue, d.message_id AS messageId,
  d.event, d.payload, d.published_at AS publishedAt, d.sender, d.room
  FROM dead d JOIN queues q ON q.id = d.queue_id
  WHERE d.message_id IN (SELECT value FROM json_each(?)) AND q.ns = ?`;
/** Every statement of the store, by name. */
export const SQL = {
  probe: "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",

  queueGet: "SELECT id FROM queues WHERE ns = ? AND name = ?",
  queueAdd: "INSERT INTO queues (ns, name) VALUES (?, ?)",
  queueSize: "SELECT size FROM queues WHERE id = ?",
  queueGrow: "UPDATE queues SET size = size + ? WHERE id = ?",
  queueNs: "SELECT ns FROM queues WHERE id = ?",

  eventGet: "SELECT id FROM events WHERE ns = ? AND event = ?",
  eventAdd: "INSERT INTO events (ns, event) VALUES (?, ?)",
  subUpsert: `INSERT INTO subs (event_id, client_id, grp, ns) VALUES (?, ?, ?, ?)
    ON CONFLICT (event_id, client_id) DO UPDATE SET grp = excluded.grp`,
  subGet: "SELECT grp FROM subs WHERE event_id = ? AND client_id = ?",
  subDel: "DELETE FROM subs WHERE event_id = ? AND client_id = ?",
  groupLeft: "SELECT 1 FROM subs WHERE event_id = ? AND grp = ? LIMIT 1",
  targets: `SELECT s.client_id AS clientId, s.grp FROM events ev JOIN subs s ON s.event_id = ev.id
    WHERE ev.ns = ? AND ev.event = ? ORDER BY s.id`,
  consumerGroups: `SELECT s.grp FROM subs s JOIN events ev ON ev.id = s.event_id
    WHERE s.client_id = ? AND ev.ns = ? AND s.grp IS NOT NULL AND s.grp <> ''
    GROUP BY s.grp ORDER BY min(ev.id)`,

  dedupGet: "SELECT ids, expires_at AS expiresAt FROM dedup WHERE ns = ? AND scope = ? AND key = ?",
  dedupPut: "INSERT OR REPLACE INTO dedup (ns, scope, key, ids, expires_at) VALUES (?, ?, ?, ?, ?)",

  roomGet: "SELECT id FROM rooms WHERE ns = ? AND name = ?",
  roomAdd: "INSERT INTO rooms (ns, name) VALUES (?, ?)",
  roomGrow: "UPDATE rooms SET members = members + ? WHERE id = ? RETURNING members",
  roomDel: "DELETE FROM rooms WHERE id = ?",
  memberAdd: "INSERT OR IGNORE INTO room_members (room_id, client_id) VALUES (?, ?)",
  memberDel: "DELETE FROM room_members WHERE room_id = ? AND client_id = ?",
  memberGet: "SELECT 1 FROM room_members WHERE room_id = ? AND client_id = ?",
  members: "SELECT client_id FROM room_members WHERE room_id = ?",
  // From the client's memberships (capped by the hub), never from every room of the namespace.
  clientRooms: `SELECT r.name FROM room_members m INDEXED BY room_members_client CROSS JOIN rooms r ON r.id = m.room_id
    WHERE m.client_id = ? AND r.ns = ? ORDER BY r.name`,

  // Counts per namespace, added once per batch of writes.
  nsCount: `INSERT INTO namespaces (ns, queues, pending, subscriptions, rooms, dead) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (ns) DO UPDATE SET queues = queues + excluded.queues, pending = pending + excluded.pending,
    subscriptions = subscriptions + excluded.subscriptions, rooms = rooms + excluded.rooms, dead = dead + excluded.dead`,

  chunkAdd: "INSERT INTO chunks (data, refs) VALUES (?, ?)",
  chunkGet: "SELECT data FROM chunks WHERE id = ?",
  // Dropping a reference: delete the chunk when it was the last, else count it down.
  chunkFree: "DELETE FROM chunks WHERE id = ? AND refs <= 1",
  chunkUnref: "UPDATE chunks SET refs = refs - 1 WHERE id = ?",
  // The same for many segments at once (an ack of a page of deliveries empties many).
  segmentsDel: "DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?))",
  chunksFree: "DELETE FROM chunks WHERE id IN (SELECT value FROM json_each(?)) AND refs <= 1 RETURNING id",
  segmentAdd: `INSERT INTO segments (queue_id, chunk, expires_at, ordered, first_id, last_id)
    VALUES (?, ?, ?, ?, ?, ?)`,
  // A segment whose first members are leased as it is stored (a handover).
  segmentAddLeased: `INSERT INTO segments (queue_id, chunk, expires_at, ordered, first_id, last_id, members, leased)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  // Whether a queue has a segment after an id: a handover checks that nothing claimable is left.
  segmentAfter: "SELECT 1 FROM segments INDEXED BY segments_queue WHERE queue_id = ? AND id > ? LIMIT 1",
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
  // One step of a long operation over a queue: its segments after one id, up to another, in order.
  segmentsStep:
    "SELECT id FROM segments INDEXED BY segments_queue WHERE queue_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
  segmentsLeasedStep: `SELECT id FROM segments WHERE queue_id = ? AND leased > 0 AND id > ? AND id <= ?
    ORDER BY id LIMIT ?`,
  segmentsLast: "SELECT max(id) FROM segments WHERE queue_id = ?",
  sweepDedup: "DELETE FROM dedup WHERE expires_at <= ?",

  deadAdd: `INSERT INTO dead (queue_id, message_id, event, payload, published_at, sender, deliveries, reason,
    dead_at, ns, room) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  deadFind: `${DEAD_BY_IDS} ORDER BY d.id`,
  deadDel: "DELETE FROM dead WHERE id = ?",
  deadDrop: `DELETE FROM dead WHERE id IN (SELECT id FROM (${DEAD_BY_IDS}))`,

  // The views: each page one range of one index after the cursor, pinned whatever the statistics
  // (a tiny analyzed table would otherwise be scanned, and stay so as it grows).
  // No joins: names of queues and events come from their primary keys, row by row of the page.
  deadPage: `SELECT id, queue_id AS queueId, message_id AS messageId, event, payload, published_at AS publishedAt,
    sender, deliveries, reason, dead_at AS deadAt, room
    FROM dead INDEXED BY dead_ns WHERE ns = ? AND id > ? ORDER BY id LIMIT ?`,
  // A view over every namespace reads them one after the other, each by its own index range.
  namespacesFrom: "SELECT ns FROM namespaces WHERE ns >= ? ORDER BY ns",
  // Empty queues are skipped while read, so this is read with a bound on the rows looked at.
  queuesPageNs:
    "SELECT id, ns, name AS queue, size AS pending FROM queues INDEXED BY sqlite_autoindex_queues_1 WHERE ns = ? AND name > ? ORDER BY name",
  subsPageNs: `SELECT id, ns, client_id AS clientId, event_id AS eventId, grp AS "group"
    FROM subs INDEXED BY subs_ns WHERE ns = ? AND id > ? ORDER BY id LIMIT ?`,
  queueName: "SELECT name FROM queues WHERE id = ?",
  eventName: "SELECT event FROM events WHERE id = ?",
  roomsPage:
    "SELECT name AS room, members FROM rooms INDEXED BY sqlite_autoindex_rooms_1 WHERE ns = ? AND name > ? ORDER BY name LIMIT ?",
  membersPage:
    "SELECT client_id FROM room_members WHERE room_id = ? AND client_id > ? ORDER BY client_id LIMIT ?",
  namespacesPage: `SELECT ns, queues, pending, subscriptions, rooms, dead AS deadLetters FROM namespaces
    WHERE ns > ? ORDER BY ns LIMIT ?`,
} as const;

export type Statements = { [K in keyof typeof SQL]: Database.Statement<unknown[], unknown> };

/** Statements that return one column: their rows come back as plain values. */
const PLUCKED = [
  "queueGet",
  "queueSize",
  "eventGet",
  "consumerGroups",
  "chunkGet",
  "chunksFree",
  "segmentPage",
  "segmentAfter",
  "segmentsOf",
  "segmentsLeased",
  "segmentsByIdUnordered",
  "segmentsHighest",
  "segmentsExpired",
  "segmentsStep",
  "segmentsLeasedStep",
  "segmentsLast",
  "queueNs",
  "roomGet",
  "roomGrow",
  "members",
  "clientRooms",
  "membersPage",
  "namespacesFrom",
  "queueName",
  "eventName",
] as const;

export function prepareStatements(db: Database.Database): Statements {
  const s = Object.fromEntries(
    Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
  ) as Statements;
  for (const name of PLUCKED) s[name].pluck();
  return s;
}
