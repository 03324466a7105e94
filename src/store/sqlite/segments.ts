// Segments and chunks in memory: a bounded cache of parsed chunks and segments, the changes of
// the running operation (written before its savepoint is released), ack hints, and the
// encodings a chunk and a segment's members have in the file.
import type { NewMessage } from "../store.js";
import type { NamespaceCounts } from "./namespace-counts.js";
import type { Statements } from "./statements.js";

/** A message as a chunk holds it: [messageId, event, payload, publishedAt, from, expiresAt, room?]. */
export type Stored = [string, string, unknown, number, string | null, number | null, string?];

/** What is left of a chunk in one queue: the chunk index and each one's delivery state. */
export interface Member {
  /** Index into the chunk. */
  i: number;
  deliveries: number;
  /** Lease holder, or null when free. */
  owner: string | null;
  /** Lease end (epoch ms); 0 when free. */
  until: number;
}

export interface Segment {
  id: number;
  queueId: number;
  chunk: number;
  messages: Stored[];
  members: Member[];
}

/** The fields of a message a chunk keeps; `payloadJson` saves serialising the payload again. */
export type StoredSource = Pick<
  NewMessage,
  "messageId" | "event" | "payload" | "publishedAt" | "from" | "expiresAt" | "room"
> & {
  payloadJson?: string;
};

/** Ack hints kept at most (about 100 B each). */
const HINTS_MAX = 200_000;
/**
 * Messages kept parsed in memory between operations, at most, counted once in the chunk cache and
 * once in the segment cache (a cached segment keeps its chunk's messages alive). About 300 B each.
 */
export const CACHE_MESSAGES = 50_000;
/** Weight of a cached segment or chunk beyond its messages (the objects around them). */
const CACHE_OVERHEAD = 8;

/**
 * The segments and chunks of the file as the running operation sees them. An operation reads
 * segments through `segment()`, changes their members in place and marks them with `touch()`
 * (or `removeMember()`); `write()` stores what it changed before its savepoint is released,
 * and a rollback calls `forget()`, so memory never holds what the file does not.
 */
export class Segments {
  /** chunks.id → its parsed messages (shared by every segment of the chunk). */
  private readonly chunkCache = new Map<number, Stored[]>();
  private cachedMessages = 0;
  /** segments.id → its members, as the file holds them once the running operation is written. */
  private readonly segmentCache = new Map<number, Segment>();
  /** Messages of the cached segments (their size when cached, plus CACHE_OVERHEAD each). */
  private cachedMembers = 0;
  /** queues.id → the highest message id of its ordered segments (see SQL.segmentsById). */
  private readonly highest = new Map<number, string>();
  /** Segments the running operation changed: written (or deleted) before its RELEASE. */
  private readonly dirty = new Set<Segment>();
  /** queues.id → entries added minus removed by the running operation; applied before its RELEASE. */
  private readonly sizeDelta = new Map<number, number>();
  /** queues.id → its size as committed or about to be (read once, then kept: every change passes here). */
  private readonly sizes = new Map<number, number>();
  /**
   * queues.id → entries added minus removed by the batch's kept writes, not in the file yet: one
   * UPDATE per queue just before COMMIT (writeSizes) instead of one per write.
   */
  private readonly batchSizes = new Map<number, number>();
  /**
   * queues.id → messageId → the segment a claim leased it from. A hint only: acks check the
   * member's id. Keyed by the id itself, not a joined string: a message id's hash is computed once.
   */
  private readonly hints = new Map<number, Map<string, number>>();
  private hintCount = 0;

  constructor(
    private readonly s: Statements,
    private readonly cacheLimit: number,
    private readonly counts: NamespaceCounts,
    /** The namespace of a queue (by queues.id). */
    private readonly nsOf: (queueId: number) => string,
  ) {}

  /** Stores a chunk (its messages' JSON texts) and caches its parsed messages. Returns its id. */
  addChunk(texts: string[], stored: Stored[], refs: number): number {
    const chunk = Number(this.s.chunkAdd.run(`[${texts.join(",")}]`, refs).lastInsertRowid);
    this.cacheChunk(chunk, stored);
    return chunk;
  }

  /**
   * Stores a queue's segment of a chunk. `lease` leases its first `count` members to `owner` until
   * `until` as it is stored (a handover: their first delivery).
   */
  addSegment(
    queueId: number,
    chunk: number,
    stored: Stored[],
    lease?: { owner: string; until: number; count: number },
  ): Segment {
    const expiresAt = soonest(stored.map((m) => m[5]));
    let low = (stored[0] as Stored)[0];
    let high = low;
    for (const m of stored) {
      if (m[0] < low) low = m[0];
      if (m[0] > high) high = m[0];
    }
    const highest = this.highest.get(queueId) ?? (this.s.segmentsHighest.get(queueId) as string | null) ?? "";
    const ordered = low > highest;
    if (ordered) this.highest.set(queueId, high);
    const members = freshMembers(stored.length);
    const leased = lease === undefined ? 0 : Math.min(lease.count, members.length);
    if (lease !== undefined) {
      for (const member of members.slice(0, leased)) {
        member.deliveries = 1;
        member.owner = lease.owner;
        member.until = lease.until;
      }
    }
    const added =
      leased === 0
        ? this.s.segmentAdd.run(queueId, chunk, expiresAt, ordered ? 1 : 0, low, high)
        : this.s.segmentAddLeased.run(
            queueId,
            chunk,
            expiresAt,
            ordered ? 1 : 0,
            low,
            high,
            encodeMembers(members),
            leased,
          );
    const id = Number(added.lastInsertRowid);
    const segment: Segment = { id, queueId, chunk, messages: stored, members };
    this.cacheSegment(segment);
    return segment;
  }

  /** A segment, from the cache or the file; undefined when it is gone. */
  segment(id: number): Segment | undefined {
    return this.segmentCache.get(id) ?? this.load(id, true);
  }

  /** A segment for a count over a long queue: read past the caches, so as not to fill memory. */
  peek(id: number): Segment | undefined {
    return this.segmentCache.get(id) ?? this.load(id, false);
  }

  /** Marks a segment changed by the running operation. */
  touch(segment: Segment) {
    this.dirty.add(segment);
  }

  /** Deletes a member (acked, expired, unsubscribed): its queue shrinks. */
  removeMember(segment: Segment, member: Member) {
    const k = segment.members.indexOf(member);
    if (k < 0) return;
    segment.members.splice(k, 1);
    this.dirty.add(segment);
    this.grow(segment.queueId, -1);
  }

  /** Counts entries added to (n > 0) or removed from (n < 0) a queue by the running operation. */
  grow(queueId: number, n: number) {
    this.sizeDelta.set(queueId, (this.sizeDelta.get(queueId) ?? 0) + n);
  }

  /** A queue's size, not counting the running operation's changes. */
  size(queueId: number): number {
    let size = this.sizes.get(queueId);
    if (size === undefined) {
      size = (this.s.queueSize.get(queueId) as number) + (this.batchSizes.get(queueId) ?? 0);
      this.sizes.set(queueId, size);
    }
    return size;
  }

  /** Entries added minus removed in a queue by the running operation so far. */
  growth(queueId: number): number {
    return this.sizeDelta.get(queueId) ?? 0;
  }

  /** The member holding a message id in a queue: by the claim's hint, else by the id bounds. */
  find(queueId: number, messageId: string): { segment: Segment; member: Member } | undefined {
    const hinted = this.hints.get(queueId)?.get(messageId);
    if (hinted !== undefined) {
      const found = this.findIn(hinted, queueId, messageId);
      if (found) return found;
    }
    const ordered = this.s.segmentsById.all(queueId, messageId) as { id: number; firstId: string }[];
    const candidates = [
      ...ordered.filter((row) => row.firstId <= messageId).map((row) => row.id),
      ...(this.s.segmentsByIdUnordered.all(queueId, messageId, messageId) as number[]),
    ].filter((id) => id !== hinted);
    for (const id of candidates) {
      const found = this.findIn(id, queueId, messageId);
      if (found) return found;
    }
    return undefined;
  }

  /** Remembers where a claim leased a message, for its ack. */
  hint(queueId: number, messageId: string, segmentId: number) {
    if (this.hintCount >= HINTS_MAX) {
      this.hints.clear();
      this.hintCount = 0;
    }
    let ofQueue = this.hints.get(queueId);
    if (ofQueue === undefined) {
      ofQueue = new Map();
      this.hints.set(queueId, ofQueue);
    }
    const size = ofQueue.size;
    ofQueue.set(messageId, segmentId);
    this.hintCount += ofQueue.size - size;
  }

  unhint(queueId: number, messageId: string) {
    const ofQueue = this.hints.get(queueId);
    if (ofQueue === undefined || !ofQueue.delete(messageId)) return;
    this.hintCount--;
    if (ofQueue.size === 0) this.hints.delete(queueId);
  }

  /** Counts members of a queue that pass a test: all segments, or only those with leases. */
  countMembers(queueId: number, leasedOnly: boolean, test: (member: Member, m: Stored) => boolean) {
    let count = 0;
    const ids = (leasedOnly ? this.s.segmentsLeased : this.s.segmentsOf).all(queueId) as number[];
    for (const id of ids) {
      const segment = this.peek(id);
      if (!segment) continue;
      for (const member of segment.members) if (test(member, segment.messages[member.i] as Stored)) count++;
    }
    return count;
  }

  /** In a loop over a whole queue: writes what it changed so far and trims the caches. */
  keepBounded() {
    if (this.cachedMembers <= this.cacheLimit && this.cachedMessages <= this.cacheLimit) return;
    this.writeSegments();
    this.trimCaches();
  }

  /** Writes the segments the running operation changed (before its savepoint is released). */
  write() {
    this.writeSegments();
  }

  /**
   * The running operation is kept (its savepoint released): its queue sizes join the batch's,
   * counted in their namespaces (entries, and queues that became empty or stopped being so).
   * Before the namespace counts keep theirs.
   */
  keepWrite() {
    if (this.sizeDelta.size === 0) return;
    for (const [queueId, n] of this.sizeDelta) {
      if (n === 0) continue;
      const before = this.size(queueId);
      this.sizes.set(queueId, before + n);
      this.batchSizes.set(queueId, (this.batchSizes.get(queueId) ?? 0) + n);
      const ns = this.nsOf(queueId);
      this.counts.add(ns, "pending", n);
      if (before > 0 !== before + n > 0) this.counts.add(ns, "queues", before > 0 ? -1 : 1);
    }
    this.sizeDelta.clear();
  }

  /** Stores the batch's queue sizes, one UPDATE per queue, just before COMMIT. */
  writeSizes() {
    for (const [queueId, n] of this.batchSizes) if (n !== 0) this.s.queueGrow.run(n, queueId);
    this.batchSizes.clear();
  }

  /** Keeps the caches within bounds, dropping the least recently added first. */
  trimCaches() {
    for (const segment of this.segmentCache.values()) {
      if (this.cachedMembers <= this.cacheLimit) break;
      this.uncacheSegment(segment);
    }
    for (const chunk of this.chunkCache.keys()) {
      if (this.cachedMessages <= this.cacheLimit) break;
      this.uncacheChunk(chunk);
    }
  }

  /**
   * Forgets everything a rollback may have undone (hints stay: acks check them); with `batch`, the
   * whole batch was rolled back, so its kept sizes go too.
   */
  forget(batch: boolean) {
    this.sizeDelta.clear();
    this.sizes.clear();
    if (batch) this.batchSizes.clear();
    this.highest.clear();
    this.dirty.clear();
    this.segmentCache.clear();
    this.cachedMembers = 0;
    this.chunkCache.clear();
    this.cachedMessages = 0;
  }

  /** Writes what the running operation changed in its segments, deleting the emptied ones. */
  private writeSegments() {
    const emptied: Segment[] = [];
    for (const segment of this.dirty) {
      if (segment.members.length === 0) {
        emptied.push(segment);
        continue;
      }
      let leased = 0;
      for (const member of segment.members) if (member.owner !== null) leased++;
      const expiresAt = soonest(segment.members.map((member) => (segment.messages[member.i] as Stored)[5]));
      this.s.segmentSet.run(encodeMembers(segment.members), leased, expiresAt, segment.id);
    }
    this.dirty.clear();
    if (emptied.length > 1) this.deleteMany(emptied);
    else for (const segment of emptied) this.deleteOne(segment);
  }

  /** Deletes an emptied segment and drops its reference to its chunk. */
  private deleteOne(segment: Segment) {
    this.s.segmentDel.run(segment.id);
    this.uncacheSegment(segment);
    if (this.s.chunkFree.run(segment.chunk).changes > 0) this.uncacheChunk(segment.chunk);
    else this.s.chunkUnref.run(segment.chunk);
  }

  /** deleteOne for many segments, in two statements (plus one per chunk other segments still use). */
  private deleteMany(emptied: Segment[]) {
    const chunks = new Set<number>();
    const again: Segment[] = [];
    for (const segment of emptied) {
      // A chunk emptied twice here (a fan-out) loses its references one at a time.
      if (chunks.has(segment.chunk)) again.push(segment);
      else chunks.add(segment.chunk);
    }
    const once = again.length === 0 ? emptied : emptied.filter((segment) => !again.includes(segment));
    this.s.segmentsDel.run(JSON.stringify(once.map((segment) => segment.id)));
    for (const segment of once) this.uncacheSegment(segment);
    const freed = new Set(this.s.chunksFree.all(JSON.stringify([...chunks])) as number[]);
    for (const chunk of chunks) {
      if (freed.has(chunk)) this.uncacheChunk(chunk);
      else this.s.chunkUnref.run(chunk);
    }
    for (const segment of again) this.deleteOne(segment);
  }

  private findIn(id: number, queueId: number, messageId: string) {
    const segment = this.segment(id);
    if (segment === undefined || segment.queueId !== queueId) return undefined;
    for (const member of segment.members) {
      if ((segment.messages[member.i] as Stored)[0] === messageId) return { segment, member };
    }
    return undefined;
  }

  private load(id: number, cache: boolean): Segment | undefined {
    const row = this.s.segmentGet.get(id) as
      | { queueId: number; chunk: number; members: string | null }
      | undefined;
    if (!row) return undefined;
    let messages = this.chunkCache.get(row.chunk);
    if (!messages) {
      messages = JSON.parse(this.s.chunkGet.get(row.chunk) as string) as Stored[];
      if (cache) this.cacheChunk(row.chunk, messages);
    }
    const segment: Segment = {
      id,
      queueId: row.queueId,
      chunk: row.chunk,
      messages,
      members: row.members === null ? freshMembers(messages.length) : decodeMembers(row.members),
    };
    if (cache) this.cacheSegment(segment);
    return segment;
  }

  private cacheSegment(segment: Segment) {
    this.segmentCache.set(segment.id, segment);
    this.cachedMembers += segment.messages.length + CACHE_OVERHEAD;
  }

  private uncacheSegment(segment: Segment) {
    if (this.segmentCache.delete(segment.id)) this.cachedMembers -= segment.messages.length + CACHE_OVERHEAD;
  }

  private cacheChunk(chunk: number, messages: Stored[]) {
    this.chunkCache.set(chunk, messages);
    this.cachedMessages += messages.length + CACHE_OVERHEAD;
  }

  private uncacheChunk(chunk: number) {
    const messages = this.chunkCache.get(chunk);
    if (messages === undefined) return;
    this.chunkCache.delete(chunk);
    this.cachedMessages -= messages.length + CACHE_OVERHEAD;
  }
}

/** The earliest of some expiry times (null: never), or null when none is set. */
export function soonest(times: (number | null)[]): number | null {
  let first: number | null = null;
  for (const t of times) if (t !== null && (first === null || t < first)) first = t;
  return first;
}

/** The JSON text of one message in a chunk (see Stored). */
export function storedText(m: StoredSource): string {
  const payload = m.payloadJson ?? JSON.stringify(m.payload === undefined ? null : m.payload);
  const room = m.room === undefined ? "" : `,${JSON.stringify(m.room)}`;
  return `[${JSON.stringify(m.messageId)},${JSON.stringify(m.event)},${payload},${m.publishedAt},${JSON.stringify(m.from ?? null)},${m.expiresAt ?? null}${room}]`;
}

export function toStored(m: StoredSource): Stored {
  const stored: Stored = [
    m.messageId,
    m.event,
    m.payload === undefined ? null : m.payload,
    m.publishedAt,
    m.from ?? null,
    m.expiresAt ?? null,
  ];
  if (m.room !== undefined) stored.push(m.room);
  return stored;
}

function freshMembers(n: number): Member[] {
  const members = new Array<Member>(n);
  for (let i = 0; i < n; i++) members[i] = { i, deliveries: 0, owner: null, until: 0 };
  return members;
}

export function encodeMembers(members: Member[]): string {
  const flat: (number | string | null)[] = [];
  for (const m of members) flat.push(m.i, m.deliveries, m.owner, m.until);
  return JSON.stringify(flat);
}

function decodeMembers(text: string): Member[] {
  const flat = JSON.parse(text) as [number, number, string | null, number][number][];
  const members: Member[] = [];
  for (let k = 0; k + 3 < flat.length; k += 4) {
    members.push({
      i: flat[k] as number,
      deliveries: flat[k + 1] as number,
      owner: flat[k + 2] as string | null,
      until: flat[k + 3] as number,
    });
  }
  return members;
}
