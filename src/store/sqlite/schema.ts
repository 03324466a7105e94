// The SQLite store's schema (PRAGMA user_version) and the migrations from older versions.
import type Database from "better-sqlite3";
import { SetupError } from "./errors.js";
import { encodeMembers, soonest, storedText } from "./segments.js";
import { SQL } from "./statements.js";

export const SCHEMA_VERSION = 4;

/** The tables of the log-structured layout (version 3; version 4 adds `ns` and `room` to dead letters). */
const LOG_TABLES = `
CREATE TABLE chunks (id INTEGER PRIMARY KEY, data TEXT NOT NULL, refs INTEGER NOT NULL);
CREATE TABLE segments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id INTEGER NOT NULL,
  chunk INTEGER NOT NULL,
  members TEXT,
  leased INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  ordered INTEGER NOT NULL,
  first_id TEXT NOT NULL,
  last_id TEXT NOT NULL
);
CREATE INDEX segments_queue ON segments (queue_id);
CREATE INDEX segments_ids ON segments (queue_id, ordered, last_id, first_id);
CREATE INDEX segments_leased ON segments (queue_id) WHERE leased > 0;
CREATE INDEX segments_expiry ON segments (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE dead (
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT,
  published_at INTEGER NOT NULL,
  sender TEXT,
  deliveries INTEGER NOT NULL,
  reason TEXT NOT NULL,
  dead_at INTEGER NOT NULL
);
CREATE INDEX dead_message_id ON dead (message_id);
`;

/** Version 3's schema: a new file gets it, then the same upgrade to version 4 an old file gets. */
const SCHEMA_V3 = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE queues (
  id INTEGER PRIMARY KEY,
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  UNIQUE (ns, name)
);
CREATE TABLE events (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, event TEXT NOT NULL, UNIQUE (ns, event));
CREATE TABLE subs (
  id INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  grp TEXT,
  UNIQUE (event_id, client_id)
);
CREATE INDEX subs_client ON subs (client_id);
CREATE TABLE dedup (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  ids TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX dedup_expiry ON dedup (expires_at);
${LOG_TABLES}`;

/**
 * Version 3 → 4: subscriptions and dead letters get their namespace (views page on it), dead
 * letters their room; rooms and their members; idempotency keys per publisher (the old
 * namespace-wide keys move to `dedup_v3` and are honoured until their window ends; the table is
 * dropped when empty); counts per namespace, counted once here and kept by every write after.
 */
const UPGRADE_TO_4 = `
ALTER TABLE subs ADD COLUMN ns TEXT NOT NULL DEFAULT '';
UPDATE subs SET ns = (SELECT ev.ns FROM events ev WHERE ev.id = subs.event_id);
CREATE INDEX subs_ns ON subs (ns, id);
ALTER TABLE dead ADD COLUMN ns TEXT NOT NULL DEFAULT '';
ALTER TABLE dead ADD COLUMN room TEXT;
UPDATE dead SET ns = (SELECT q.ns FROM queues q WHERE q.id = dead.queue_id);
CREATE INDEX dead_ns ON dead (ns, id);
DROP INDEX IF EXISTS dedup_expiry;
ALTER TABLE dedup RENAME TO dedup_v3;
CREATE INDEX dedup_v3_expiry ON dedup_v3 (expires_at);
CREATE TABLE dedup (
  ns TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  ids TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (ns, scope, key)
) WITHOUT ROWID;
CREATE INDEX dedup_expiry ON dedup (expires_at);
CREATE TABLE rooms (
  id INTEGER PRIMARY KEY,
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  members INTEGER NOT NULL DEFAULT 0,
  UNIQUE (ns, name)
);
CREATE TABLE room_members (
  room_id INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  PRIMARY KEY (room_id, client_id)
) WITHOUT ROWID;
CREATE INDEX room_members_client ON room_members (client_id, room_id);
CREATE TABLE namespaces (
  ns TEXT PRIMARY KEY,
  queues INTEGER NOT NULL DEFAULT 0,
  pending INTEGER NOT NULL DEFAULT 0,
  subscriptions INTEGER NOT NULL DEFAULT 0,
  rooms INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO namespaces (ns, queues, pending, subscriptions, rooms, dead)
SELECT ns, sum(queues), sum(pending), sum(subscriptions), 0, sum(dead) FROM (
  SELECT ns, count(*) AS queues, sum(size) AS pending, 0 AS subscriptions, 0 AS dead
    FROM queues WHERE size > 0 GROUP BY ns
  UNION ALL SELECT ns, 0, 0, count(*), 0 FROM subs GROUP BY ns
  UNION ALL SELECT ns, 0, 0, 0, count(*) FROM dead GROUP BY ns
) GROUP BY ns;
`;

/** A dead letter's message as its row holds it. */
export interface DeadSource {
  messageId: string;
  event: string;
  payload: string | null;
  publishedAt: number;
  sender: string | null;
}

/** Creates the schema in an empty file, or migrates an older one; refuses what it cannot read. */
export function ensureSchema(db: Database.Database) {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version === 0) {
    const objects = db.prepare("SELECT count(*) FROM sqlite_master").pluck().get() as number;
    if (objects > 0) {
      throw new SetupError(
        "the file holds another application's database (tables but no queuehub schema version); " +
          "set HUB_DB to another path, or move this file aside",
      );
    }
    db.transaction(() => {
      db.exec(SCHEMA_V3);
      upgradeTo4(db);
    }).immediate();
  } else if (version > SCHEMA_VERSION) {
    throw new SetupError(
      `the file has schema version ${version}, written by a newer queuehub (this build knows ` +
        `${SCHEMA_VERSION}); run the newer build, or restore a backup made for this one`,
    );
  } else if (version === 1) {
    throw new SetupError(
      "the file has schema version 1, a development format this build no longer reads; " +
        "move it aside (or delete it) to start with an empty store",
    );
  } else if (version === 2) {
    migrateFrom2(db);
    migrateFrom3(db);
  } else if (version === 3) {
    migrateFrom3(db);
  } else if (version !== SCHEMA_VERSION) {
    throw new SetupError(`unknown schema version ${version}; restore a backup or move the file aside`);
  }
}

/**
 * Version 2 kept one row per (queue, message): its entries become segments of up to 100
 * (deliveries, leases and TTLs kept, in queue order), its dead letters get their message inline.
 * One transaction: a failure leaves the file as it was.
 */
function migrateFrom2(db: Database.Database) {
  const PAGE = 100;
  db.transaction(() => {
    db.exec("ALTER TABLE dead RENAME TO dead_v2");
    db.exec("DROP INDEX dead_body");
    db.exec(LOG_TABLES);
    const page = db.prepare(`SELECT e.seq, e.deliveries, e.lease_owner AS owner, e.lease_until AS until,
      e.expires_at AS expiresAt, b.message_id AS messageId, b.event, b.payload, b.published_at AS publishedAt,
      b.sender FROM entries e JOIN bodies b ON b.id = e.body WHERE e.queue_id = ? AND e.seq > ?
      ORDER BY e.seq LIMIT ${PAGE}`);
    const chunkAdd = db.prepare(SQL.chunkAdd);
    const segmentAdd = db.prepare(SQL.segmentAdd);
    const segmentSet = db.prepare(SQL.segmentSet);
    type Row = DeadSource & {
      seq: number;
      deliveries: number;
      owner: string | null;
      until: number;
      expiresAt: number | null;
    };
    const addSegment = (queueId: number, rows: Row[], ordered = true) => {
      if (rows.length === 0) return;
      const texts = rows.map((r) =>
        storedText({ ...r, payload: null, from: r.sender, payloadJson: r.payload ?? "null" }),
      );
      const chunk = chunkAdd.run(`[${texts.join(",")}]`, 1).lastInsertRowid;
      const ids = rows.map((r) => r.messageId).sort();
      const expiresAt = soonest(rows.map((r) => r.expiresAt));
      const segment = segmentAdd.run(
        queueId,
        chunk,
        expiresAt,
        ordered ? 1 : 0,
        ids[0],
        ids[ids.length - 1],
      ).lastInsertRowid;
      const members = rows.map((r, i) => ({
        i,
        deliveries: r.deliveries,
        owner: r.owner,
        until: r.owner === null ? 0 : r.until,
      }));
      segmentSet.run(
        encodeMembers(members),
        members.filter((m) => m.owner !== null).length,
        expiresAt,
        segment,
      );
    };
    for (const queueId of db.prepare("SELECT id FROM queues").pluck().all() as number[]) {
      // Ordered segments of a queue hold rising, disjoint id ranges (acks find them by range): an
      // entry whose id is not above every earlier one (a requeued dead letter) gets one of its own.
      let after = Number.MIN_SAFE_INTEGER;
      let highest = "";
      let run: Row[] = [];
      for (;;) {
        const rows = page.all(queueId, after) as Row[];
        if (rows.length === 0) break;
        after = (rows[rows.length - 1] as Row).seq;
        for (const row of rows) {
          if (row.messageId > highest) {
            if (run.length >= PAGE) {
              addSegment(queueId, run);
              run = [];
            }
            run.push(row);
            highest = row.messageId;
          } else {
            addSegment(queueId, run);
            addSegment(queueId, [row], false);
            run = [];
          }
        }
      }
      addSegment(queueId, run);
    }
    db.exec(`INSERT INTO dead (queue_id, message_id, event, payload, published_at, sender, deliveries, reason, dead_at)
      SELECT d.queue_id, b.message_id, b.event, b.payload, b.published_at, b.sender, d.deliveries, d.reason, d.dead_at
      FROM dead_v2 d JOIN bodies b ON b.id = d.body ORDER BY d.id`);
    db.exec("DROP TABLE dead_v2; DROP TABLE entries; DROP TABLE bodies;");
    db.pragma("user_version = 3");
  }).immediate();
}

/** Version 3 → 4 (see UPGRADE_TO_4), in one transaction: a failure leaves the file as it was. */
function migrateFrom3(db: Database.Database) {
  db.transaction(() => upgradeTo4(db)).immediate();
}

function upgradeTo4(db: Database.Database) {
  db.exec(UPGRADE_TO_4);
  if (db.prepare("SELECT 1 FROM dedup_v3 LIMIT 1").get() === undefined) db.exec("DROP TABLE dedup_v3");
  db.pragma("user_version = 4");
}
