// Redis store: one Redis (standalone or Sentinel-managed; NOT Redis Cluster) shared by a
// cluster of hubs. Every state change is one Lua script, so it is atomic and two hubs never
// hand one group entry to two members. Time is the caller's `now` (stats() uses Date.now()).
//
// Keys, all under `prefix` (P); `ns` never contains "|" (PROTOCOL.md's namespace names), and
// the scripts build keys from P themselves, so everything must live on one Redis:
//   P seq                      INCR counter: one number per stored message (FIFO = store order)
//   P m:<ns>|<id>              HASH b (JSON [publishedAt, from, payload]), e (event),
//                              x (expiresAt or ""), r (refs: queue entries + dead letters)
//   P q:<ns>|<queue>:r         ZSET seq -> id, entries ready to claim
//   P q:<ns>|<queue>:l         ZSET leaseUntil -> id, leased entries
//   P q:<ns>|<queue>:o         ZSET seq -> id, the same leased entries by store order
//   P q:<ns>|<queue>:s         HASH id -> "seq,deliveries,leaseUntil,noTtl,owner", only for
//                              entries ever claimed or requeued (absent = fresh, 0 deliveries)
//   P q:<ns>|<queue>:e         HASH event -> entries of that event (pending counts by event)
//   P qs:<ns>                  SET queues of the namespace (stats)
//   P nss                      SET namespaces
//   P sub:<ns>|<event>         HASH clientId -> "" (own queue) or ":"+group
//   P cs:<ns>|<clientId>       HASH event -> same, the client's side of the subscriptions
//   P ev:<ns>                  SET events with subscribers
//   P k:<ns>|<key>             STRING "<windowEnd>\n<ids json>" (dedup), Redis TTL for GC
//   P ttl                      ZSET expiresAt -> "<ns>\n<queue>\n<id>" (sweep)
//   P d:<ns>                   ZSET order -> "<queue>\n<id>" dead letters, oldest first
//   P dd:<ns>                  HASH "<queue>\n<id>" -> "reason,deadAt,deliveries"
//   P di:<ns>|<id>             SET queues holding a dead letter of <id>
//   P dseq                     INCR counter for dead-letter order
// The body is stored once per message whatever the fan-out; claim reads `limit` entries
// (plus entries of other events when filtered by event), never the whole queue.
import { Redis } from "ioredis";
import type { Message } from "../protocol.js";
import {
  type ClaimRequest,
  type ClaimResult,
  clientQueue,
  type DeadLetter,
  type EnqueueRequest,
  type EnqueueResult,
  groupQueue,
  type QueueName,
  type QueueStats,
  type QueueStore,
  StoreError,
  type Subscription,
} from "./store.js";

export interface RedisStoreOptions {
  url: string;
  /** Every key starts with it, e.g. "queuehub:". */
  prefix: string;
  /** A command without a reply after this long rejects with UNAVAILABLE (default 5000 ms). */
  commandTimeoutMs?: number;
  /** Initial connection attempt limit (default 5000 ms). */
  connectTimeoutMs?: number;
}

const PRELUDE = `
local P = ARGV[1]
local function qk(ns, q, s) return P .. 'q:' .. ns .. '|' .. q .. ':' .. s end
local function mk(ns, id) return P .. 'm:' .. ns .. '|' .. id end
local function num(x) return string.format('%.0f', x) end
local function tmember(ns, q, id) return ns .. '\\n' .. q .. '\\n' .. id end

local function getState(ns, q, id)
  local s = redis.call('HGET', qk(ns, q, 's'), id)
  if not s then return nil end
  local seq, d, lu, nt, owner = string.match(s, '^(%d+),(%d+),(%d+),(%d),(.*)$')
  return { seq = tonumber(seq), d = tonumber(d), lu = tonumber(lu), nt = nt == '1', owner = owner }
end
local function setState(ns, q, id, st)
  redis.call('HSET', qk(ns, q, 's'), id,
    num(st.seq) .. ',' .. num(st.d) .. ',' .. num(st.lu) .. ',' .. (st.nt and '1' or '0') .. ',' .. st.owner)
end
local function decref(ns, id)
  local k = mk(ns, id)
  if redis.call('HINCRBY', k, 'r', -1) <= 0 then redis.call('DEL', k) end
end
local function countEvent(ns, q, ev, delta)
  local k = qk(ns, q, 'e')
  if redis.call('HINCRBY', k, ev, delta) <= 0 then redis.call('HDEL', k, ev) end
end
local function bodyMeta(ns, id)
  local m = redis.call('HMGET', mk(ns, id), 'e', 'x')
  return m[1], m[2]
end
-- Takes an entry out of its queue, ready or leased; the body's ref is the caller's business.
local function unlink(ns, q, id, ev, x)
  if redis.call('ZREM', qk(ns, q, 'r'), id) == 0 then
    if redis.call('ZREM', qk(ns, q, 'l'), id) == 0 then return false end
    redis.call('ZREM', qk(ns, q, 'o'), id)
  end
  redis.call('HDEL', qk(ns, q, 's'), id)
  if ev then countEvent(ns, q, ev, -1) end
  if x and x ~= '' then redis.call('ZREM', P .. 'ttl', tmember(ns, q, id)) end
  return true
end
-- Deletes an entry for good (ack, expiry, unsubscribe).
local function removeEntry(ns, q, id)
  local ev, x = bodyMeta(ns, id)
  if unlink(ns, q, id, ev, x) then
    if ev then decref(ns, id) end
    return true
  end
  return false
end
-- Moves an entry to the namespace's dead letters; the dead letter keeps the entry's ref.
local function toDead(ns, q, id, ev, x, deliveries, reason, now)
  unlink(ns, q, id, ev, x)
  local member = q .. '\\n' .. id
  if redis.call('HSET', P .. 'dd:' .. ns, member, reason .. ',' .. num(now) .. ',' .. num(deliveries)) == 0 then
    decref(ns, id)
  end
  redis.call('ZADD', P .. 'd:' .. ns, redis.call('INCR', P .. 'dseq'), member)
  redis.call('SADD', P .. 'di:' .. ns .. '|' .. id, q)
end
local function queueSize(ns, q)
  return redis.call('ZCARD', qk(ns, q, 'r')) + redis.call('ZCARD', qk(ns, q, 'l'))
end
local function consumerQueues(ns, client)
  local out = { 'c:' .. client }
  local seen = {}
  for _, enc in ipairs(redis.call('HVALS', P .. 'cs:' .. ns .. '|' .. client)) do
    if enc ~= '' and not seen[enc] then
      seen[enc] = true
      out[#out + 1] = 'g:' .. string.sub(enc, 2)
    end
  end
  return out
end
`;

const SCRIPTS = {
  // ARGV: P, ns, clientId, groupEnc, events...
  qhSubscribe: `
local ns, client, enc = ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV do
  local ev = ARGV[i]
  redis.call('HSET', P .. 'sub:' .. ns .. '|' .. ev, client, enc)
  redis.call('HSET', P .. 'cs:' .. ns .. '|' .. client, ev, enc)
  redis.call('SADD', P .. 'ev:' .. ns, ev)
end
redis.call('SADD', P .. 'nss', ns)
return 0`,

  // ARGV: P, ns, clientId, events...  -> entries dropped
  qhUnsubscribe: `
local ns, client = ARGV[2], ARGV[3]
local dropped = 0
local function dropEvent(q, ev)
  local ek = qk(ns, q, 'e')
  if not redis.call('HGET', ek, ev) then return end
  for _, id in ipairs(redis.call('ZRANGE', qk(ns, q, 'l'), 0, -1)) do
    if bodyMeta(ns, id) == ev and removeEntry(ns, q, id) then dropped = dropped + 1 end
  end
  local after = '-inf'
  while redis.call('HGET', ek, ev) do
    local ids = redis.call('ZRANGEBYSCORE', qk(ns, q, 'r'), after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1000)
    if #ids == 0 then break end
    for j = 1, #ids, 2 do
      after = '(' .. ids[j + 1]
      if bodyMeta(ns, ids[j]) == ev and removeEntry(ns, q, ids[j]) then dropped = dropped + 1 end
    end
  end
end
for i = 4, #ARGV do
  local ev = ARGV[i]
  local sk = P .. 'sub:' .. ns .. '|' .. ev
  local enc = redis.call('HGET', sk, client)
  if enc then
    redis.call('HDEL', sk, client)
    redis.call('HDEL', P .. 'cs:' .. ns .. '|' .. client, ev)
    if redis.call('HLEN', sk) == 0 then redis.call('SREM', P .. 'ev:' .. ns, ev) end
    dropEvent('c:' .. client, ev)
    if enc ~= '' then
      local still = false
      for _, v in ipairs(redis.call('HVALS', sk)) do
        if v == enc then still = true; break end
      end
      if not still then dropEvent('g:' .. string.sub(enc, 2), ev) end
    end
  end
end
return dropped`,

  // ARGV: P, ns, key, now, window, maxLen, overflow, n, idsJson, then per message:
  //   id, event, body, expiresAt|"", hasFrom 0/1, from, echo 0/1, nTo (-1: no \`to\`), to...
  // -> {1, idsJson} duplicate | {2, message} queue full | {0, dropped, queues...}
  qhEnqueue: `
local ns, key, now, window = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local maxLen, overflow, n, idsJson = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), ARGV[9]
local dk
if key ~= '' then
  dk = P .. 'k:' .. ns .. '|' .. key
  local seen = redis.call('GET', dk)
  if seen then
    local sep = string.find(seen, '\\n', 1, true)
    if sep and tonumber(string.sub(seen, 1, sep - 1)) > now then
      return { 1, string.sub(seen, sep + 1) }
    end
  end
end
local msgs = {}
local subsCache = {}
local added, order = {}, {}
local i = 10
for m = 1, n do
  local msg = { id = ARGV[i], ev = ARGV[i + 1], body = ARGV[i + 2], x = ARGV[i + 3] }
  local hasFrom, from, echo, nto = ARGV[i + 4] == '1', ARGV[i + 5], ARGV[i + 6] == '1', tonumber(ARGV[i + 7])
  i = i + 8
  local targets, seen = {}, {}
  local function add(q)
    if not seen[q] then
      seen[q] = true
      targets[#targets + 1] = q
      if not added[q] then added[q] = 0; order[#order + 1] = q end
      added[q] = added[q] + 1
    end
  end
  if nto >= 0 then
    for t = 0, nto - 1 do add('c:' .. ARGV[i + t]) end
    i = i + nto
  else
    local subs = subsCache[msg.ev]
    if not subs then
      subs = redis.call('HGETALL', P .. 'sub:' .. ns .. '|' .. msg.ev)
      subsCache[msg.ev] = subs
    end
    for j = 1, #subs, 2 do
      local client, enc = subs[j], subs[j + 1]
      if enc ~= '' then add('g:' .. string.sub(enc, 2))
      elseif echo or not hasFrom or client ~= from then add('c:' .. client) end
    end
  end
  msg.targets = targets
  msgs[m] = msg
end
if maxLen > 0 and overflow == 'reject' then
  for _, q in ipairs(order) do
    local size = queueSize(ns, q)
    if size + added[q] > maxLen then
      return { 2, 'queue ' .. q .. ' holds ' .. size .. ' of ' .. maxLen }
    end
  end
end
local seq0 = redis.call('INCRBY', P .. 'seq', n) - n
local dropped = 0
local sizes = {}
for m = 1, n do
  local msg = msgs[m]
  if #msg.targets > 0 then
    local seq = seq0 + m
    local bk = mk(ns, msg.id)
    redis.call('HSET', bk, 'b', msg.body, 'e', msg.ev, 'x', msg.x)
    local refs = 0
    for _, q in ipairs(msg.targets) do
      if redis.call('ZADD', qk(ns, q, 'r'), 'NX', seq, msg.id) == 1 then
        refs = refs + 1
        countEvent(ns, q, msg.ev, 1)
        if msg.x ~= '' then redis.call('ZADD', P .. 'ttl', msg.x, tmember(ns, q, msg.id)) end
        if maxLen > 0 then
          local size = sizes[q]
          if size then size = size + 1 else size = queueSize(ns, q) end
          while size > maxLen do
            local rh = redis.call('ZRANGE', qk(ns, q, 'r'), 0, 0, 'WITHSCORES')
            local oh = redis.call('ZRANGE', qk(ns, q, 'o'), 0, 0, 'WITHSCORES')
            local oid = rh[1]
            if oh[1] and (not rh[1] or tonumber(oh[2]) < tonumber(rh[2])) then oid = oh[1] end
            if not oid then break end
            local oev, ox = bodyMeta(ns, oid)
            local st = getState(ns, q, oid)
            toDead(ns, q, oid, oev, ox, st and st.d or 0, 'overflow', now)
            dropped = dropped + 1
            size = size - 1
          end
          sizes[q] = size
        end
      end
    end
    if redis.call('HINCRBY', bk, 'r', refs) <= 0 then redis.call('DEL', bk) end
  end
end
if #order > 0 then
  local qsk = P .. 'qs:' .. ns
  for _, q in ipairs(order) do redis.call('SADD', qsk, q) end
  redis.call('SADD', P .. 'nss', ns)
end
if dk then
  redis.call('SET', dk, num(now + window) .. '\\n' .. idsJson, 'PX', math.max(1, window) + 60000)
end
local out = { 0, dropped }
for _, q in ipairs(order) do out[#out + 1] = q end
return out`,

  // ARGV: P, ns, queue, consumer, limit, now, leaseMs, maxDeliveries, event|""
  // -> {expired, deadLettered, id, event, deliveries, body, ...}
  qhClaim: `
local ns, q, consumer, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local now, leaseMs, maxDel, ev = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local rk, lk, ok = qk(ns, q, 'r'), qk(ns, q, 'l'), qk(ns, q, 'o')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', lk, '-inf', num(now))) do
  local st = getState(ns, q, id)
  redis.call('ZREM', lk, id)
  redis.call('ZREM', ok, id)
  if st then
    redis.call('ZADD', rk, st.seq, id)
    st.lu = 0
    setState(ns, q, id, st)
  end
end
local out = { 0, 0 }
local got, expired, dead = 0, 0, 0
local after = '-inf'
local chunk = limit + 16
if ev ~= '' then chunk = math.max(chunk, 256) end
local untilStr = num(now + leaseMs)
while got < limit do
  local ids = redis.call('ZRANGEBYSCORE', rk, after, '+inf', 'WITHSCORES', 'LIMIT', 0, chunk)
  if #ids == 0 then break end
  for j = 1, #ids, 2 do
    local id, seq = ids[j], ids[j + 1]
    after = '(' .. seq
    local b = redis.call('HMGET', mk(ns, id), 'b', 'e', 'x')
    if not b[1] then
      redis.call('ZREM', rk, id)
      redis.call('HDEL', qk(ns, q, 's'), id)
    elseif ev == '' or b[2] == ev then
      local st = getState(ns, q, id)
      local nt = st and st.nt
      if b[3] ~= '' and not nt and tonumber(b[3]) <= now then
        unlink(ns, q, id, b[2], b[3])
        decref(ns, id)
        expired = expired + 1
      elseif maxDel > 0 and st and st.d >= maxDel then
        toDead(ns, q, id, b[2], b[3], st.d, 'max-deliveries', now)
        dead = dead + 1
      else
        local d = (st and st.d or 0) + 1
        redis.call('ZREM', rk, id)
        redis.call('ZADD', lk, untilStr, id)
        redis.call('ZADD', ok, seq, id)
        setState(ns, q, id, { seq = tonumber(seq), d = d, lu = now + leaseMs, nt = nt, owner = consumer })
        out[#out + 1] = id
        out[#out + 1] = b[2]
        out[#out + 1] = d
        out[#out + 1] = b[1]
        got = got + 1
        if got >= limit then break end
      end
    end
  end
end
out[1] = expired
out[2] = dead
return out`,

  // ARGV: P, ns, queue, consumer, hasIds 0/1, ids...  -> released
  qhRelease: `
local ns, q, consumer, hasIds = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local rk, lk, ok = qk(ns, q, 'r'), qk(ns, q, 'l'), qk(ns, q, 'o')
local ids
if hasIds then
  ids = {}
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', lk, 0, -1)
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', lk, id) then
    local st = getState(ns, q, id)
    if st and st.owner == consumer then
      redis.call('ZREM', lk, id)
      redis.call('ZREM', ok, id)
      redis.call('ZADD', rk, st.seq, id)
      st.lu = 0
      st.owner = ''
      setState(ns, q, id, st)
      n = n + 1
    end
  end
end
return n`,

  // ARGV: P, ns, clientId, ids...  -> removed ids
  qhAck: `
local ns, client = ARGV[2], ARGV[3]
local queues = consumerQueues(ns, client)
local removed, seen = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ev, x = bodyMeta(ns, id)
    if ev then
      for k, q in ipairs(queues) do
        local mine = k == 1
        if not mine then
          local st = getState(ns, q, id)
          mine = st ~= nil and st.owner == client
        end
        if mine and unlink(ns, q, id, ev, x) then
          decref(ns, id)
          removed[#removed + 1] = id
          break
        end
      end
    end
  end
end
return removed`,

  // ARGV: P, ns, clientId, now, event|""  -> count
  qhPending: `
local ns, client, now, ev = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local total = 0
for k, q in ipairs(consumerQueues(ns, client)) do
  if ev ~= '' then
    total = total + tonumber(redis.call('HGET', qk(ns, q, 'e'), ev) or '0')
  else
    total = total + queueSize(ns, q)
  end
  if k > 1 then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk(ns, q, 'l'), '(' .. now, '+inf')) do
      local st = getState(ns, q, id)
      if st and st.owner ~= client and (ev == '' or bodyMeta(ns, id) == ev) then total = total - 1 end
    end
  end
end
return total`,

  // ARGV: P, now, max  -> {removed, examined}
  qhSweep: `
local now, max = ARGV[2], tonumber(ARGV[3])
local tk = P .. 'ttl'
local items = redis.call('ZRANGEBYSCORE', tk, '-inf', now, 'LIMIT', 0, max)
local removed = 0
for _, member in ipairs(items) do
  redis.call('ZREM', tk, member)
  local a = string.find(member, '\\n', 1, true)
  local b = a and string.find(member, '\\n', a + 1, true)
  if b then
    local ns, q, id = string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1), string.sub(member, b + 1)
    local st = getState(ns, q, id)
    if not (st and st.nt) and removeEntry(ns, q, id) then removed = removed + 1 end
  end
end
return { removed, #items }`,

  // ARGV: P, ns, limit  -> {queue, id, event, body, meta, ...}
  qhListDead: `
local ns, limit = ARGV[2], tonumber(ARGV[3])
local out = {}
if limit <= 0 then return out end
for _, member in ipairs(redis.call('ZRANGE', P .. 'd:' .. ns, 0, limit - 1)) do
  local a = string.find(member, '\\n', 1, true)
  local q, id = string.sub(member, 1, a - 1), string.sub(member, a + 1)
  local b = redis.call('HMGET', mk(ns, id), 'b', 'e')
  local meta = redis.call('HGET', P .. 'dd:' .. ns, member)
  if b[1] and meta then
    out[#out + 1] = q
    out[#out + 1] = id
    out[#out + 1] = b[2]
    out[#out + 1] = b[1]
    out[#out + 1] = meta
  end
end
return out`,

  // ARGV: P, ns, ids...  -> queues touched
  qhRequeueDead: `
local ns = ARGV[2]
local touched, tseen, seen = {}, {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ik = P .. 'di:' .. ns .. '|' .. id
    local queues = redis.call('SMEMBERS', ik)
    if #queues > 0 then
      local ev = redis.call('HGET', mk(ns, id), 'e')
      for _, q in ipairs(queues) do
        local member = q .. '\\n' .. id
        if redis.call('ZREM', P .. 'd:' .. ns, member) == 1 then
          redis.call('HDEL', P .. 'dd:' .. ns, member)
          local seq = redis.call('INCR', P .. 'seq')
          if ev and redis.call('ZADD', qk(ns, q, 'r'), 'NX', seq, id) == 1 then
            setState(ns, q, id, { seq = seq, d = 0, lu = 0, nt = true, owner = '' })
            countEvent(ns, q, ev, 1)
            redis.call('SADD', P .. 'qs:' .. ns, q)
          elseif ev then
            decref(ns, id)
          end
          if not tseen[q] then tseen[q] = true; touched[#touched + 1] = q end
        end
      end
      redis.call('DEL', ik)
    end
  end
end
return touched`,

  // ARGV: P, ns, ids...  -> dropped
  qhDropDead: `
local ns = ARGV[2]
local n, seen = 0, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ik = P .. 'di:' .. ns .. '|' .. id
    for _, q in ipairs(redis.call('SMEMBERS', ik)) do
      local member = q .. '\\n' .. id
      if redis.call('ZREM', P .. 'd:' .. ns, member) == 1 then
        redis.call('HDEL', P .. 'dd:' .. ns, member)
        decref(ns, id)
        n = n + 1
      end
    end
    redis.call('DEL', ik)
  end
end
return n`,

  // ARGV: P, now, ns|""  -> {ns, queue, pending, inFlight, ...}
  qhStats: `
local now, only = ARGV[2], ARGV[3]
local nss
if only ~= '' then nss = { only } else nss = redis.call('SMEMBERS', P .. 'nss') end
local out = {}
for _, ns in ipairs(nss) do
  for _, q in ipairs(redis.call('SMEMBERS', P .. 'qs:' .. ns)) do
    local size = queueSize(ns, q)
    if size > 0 then
      out[#out + 1] = ns
      out[#out + 1] = q
      out[#out + 1] = size
      out[#out + 1] = redis.call('ZCOUNT', qk(ns, q, 'l'), '(' .. now, '+inf')
    end
  end
end
return out`,

  // ARGV: P, ns|""  -> {ns, event, clientId, groupEnc, ...}
  qhSubscriptions: `
local only = ARGV[2]
local nss
if only ~= '' then nss = { only } else nss = redis.call('SMEMBERS', P .. 'nss') end
local out = {}
for _, ns in ipairs(nss) do
  for _, ev in ipairs(redis.call('SMEMBERS', P .. 'ev:' .. ns)) do
    local subs = redis.call('HGETALL', P .. 'sub:' .. ns .. '|' .. ev)
    for j = 1, #subs, 2 do
      out[#out + 1] = ns
      out[#out + 1] = ev
      out[#out + 1] = subs[j]
      out[#out + 1] = subs[j + 1]
    end
  end
end
return out`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number;
type Reply = string | number | null | Reply[];

const encodeGroup = (group: string | null) => (group === null ? "" : `:${group}`);
const decodeGroup = (enc: string) => (enc === "" ? null : enc.slice(1));

export class RedisStore implements QueueStore {
  private closed = false;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    // The first connection fails at once (the caller learns Redis is missing); once it has
    // been up, the client reconnects by itself, forever, backing off to 1 s between attempts.
    let wasReady = false;
    const redis = new Redis(opts.url, {
      lazyConnect: true,
      // Fail fast instead of queueing while Redis is away; never resend a script whose
      // outcome is unknown (a retried publish is made safe by its idempotency key instead).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs ?? 5000,
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      retryStrategy: (times) => (wasReady ? Math.min(50 * 2 ** Math.min(times, 6), 1000) : null),
    });
    redis.once("ready", () => {
      wasReady = true;
    });
    // Errors surface on the calls; without a listener ioredis would log each reconnect failure.
    let lastError: Error | undefined;
    redis.on("error", (err: Error) => {
      lastError = err;
    });
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      redis.defineCommand(name, { numberOfKeys: 0, lua: PRELUDE + lua });
    }
    try {
      await redis.connect();
    } catch (err) {
      // After a failed first attempt the client has ended; disconnect() on it would leave a
      // 2 s timer behind (ioredis' disconnectTimeout on an already closed stream).
      if (redis.status !== "end") redis.disconnect();
      const reason = lastError?.message ?? (err as Error).message;
      throw new StoreError("UNAVAILABLE", `redis ${opts.url}: ${reason}`, { cause: lastError ?? err });
    }
    return new RedisStore(redis, opts.prefix);
  }

  async subscribe(ns: string, clientId: string, events: string[], group: string | null) {
    if (events.length === 0) return this.check();
    await this.run("qhSubscribe", ns, clientId, encodeGroup(group), ...events);
  }

  async unsubscribe(ns: string, clientId: string, events: string[]) {
    if (events.length === 0) return this.check(0);
    return (await this.run("qhUnsubscribe", ns, clientId, ...events)) as number;
  }

  async consumerQueues(ns: string, clientId: string) {
    const encs = (await this.wrap(() => this.redis.hvals(`${this.prefix}cs:${ns}|${clientId}`))) as string[];
    const groups = [...new Set(encs.filter((e) => e !== ""))].map((e) => groupQueue(e.slice(1))).sort();
    return [clientQueue(clientId), ...groups];
  }

  async enqueue(req: EnqueueRequest): Promise<EnqueueResult> {
    const messageIds = req.messages.map((m) => m.messageId);
    if (req.messages.length === 0) {
      this.check();
      return { duplicate: false, messageIds, queues: [], dropped: 0 };
    }
    const args: Arg[] = [
      req.ns,
      req.key ?? "",
      req.now,
      req.dedupWindowMs,
      req.maxQueueLength,
      req.overflow,
      req.messages.length,
      JSON.stringify(messageIds),
    ];
    for (const m of req.messages) {
      args.push(
        m.messageId,
        m.event,
        `[${m.publishedAt},${JSON.stringify(m.from)},${m.payloadJson ?? JSON.stringify(m.payload ?? null)}]`,
        m.expiresAt ?? "",
        m.from === null ? 0 : 1,
        m.from ?? "",
        m.echo ? 1 : 0,
        m.to ? m.to.length : -1,
      );
      if (m.to) args.push(...m.to);
    }
    const reply = (await this.run("qhEnqueue", ...args)) as Reply[];
    if (reply[0] === 1) {
      return { duplicate: true, messageIds: JSON.parse(reply[1] as string), queues: [], dropped: 0 };
    }
    if (reply[0] === 2) throw new StoreError("QUEUE_FULL", reply[1] as string);
    return { duplicate: false, messageIds, queues: reply.slice(2) as string[], dropped: reply[1] as number };
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const reply = (await this.run(
      "qhClaim",
      req.ns,
      req.queue,
      req.consumer,
      Math.max(0, Math.floor(req.limit)),
      req.now,
      req.leaseMs,
      req.maxDeliveries,
      req.event ?? "",
    )) as Reply[];
    const messages: Message[] = [];
    for (let i = 2; i < reply.length; i += 4) {
      messages.push(
        toMessage(reply[i] as string, reply[i + 1] as string, reply[i + 2] as number, reply[i + 3] as string),
      );
    }
    return { messages, expired: reply[0] as number, deadLettered: reply[1] as number };
  }

  async release(ns: string, queue: QueueName, consumer: string, messageIds?: string[]) {
    if (messageIds?.length === 0) return this.check(0);
    const ids = messageIds ? [1, ...messageIds] : [0];
    return (await this.run("qhRelease", ns, queue, consumer, ...ids)) as number;
  }

  async ack(ns: string, clientId: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check([] as string[]);
    return (await this.run("qhAck", ns, clientId, ...messageIds)) as string[];
  }

  async pending(ns: string, clientId: string, now: number, event?: string) {
    return (await this.run("qhPending", ns, clientId, now, event ?? "")) as number;
  }

  async sweep(now: number) {
    const chunk = 1000;
    let removed = 0;
    for (;;) {
      const [n, examined] = (await this.run("qhSweep", now, chunk)) as [number, number];
      removed += n;
      if (examined < chunk) return removed;
    }
  }

  async listDead(ns: string, limit: number) {
    const reply = (await this.run("qhListDead", ns, Math.floor(limit))) as string[];
    const out: DeadLetter[] = [];
    for (let i = 0; i < reply.length; i += 5) {
      const [queue, id, event, body, meta] = reply.slice(i, i + 5) as [
        string,
        string,
        string,
        string,
        string,
      ];
      const [reason, deadAt, deliveries] = meta.split(",") as [DeadLetter["reason"], string, string];
      out.push({
        ...toMessage(id, event, Number(deliveries), body),
        ns,
        queue,
        reason,
        deadAt: Number(deadAt),
      });
    }
    return out;
  }

  async requeueDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check([] as QueueName[]);
    return (await this.run("qhRequeueDead", ns, ...messageIds)) as QueueName[];
  }

  async dropDead(ns: string, messageIds: string[]) {
    if (messageIds.length === 0) return this.check(0);
    return (await this.run("qhDropDead", ns, ...messageIds)) as number;
  }

  async stats(ns?: string) {
    const reply = (await this.run("qhStats", Date.now(), ns ?? "")) as Reply[];
    const out: QueueStats[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      out.push({
        ns: reply[i] as string,
        queue: reply[i + 1] as string,
        pending: reply[i + 2] as number,
        inFlight: reply[i + 3] as number,
      });
    }
    return out;
  }

  async subscriptions(ns?: string) {
    const reply = (await this.run("qhSubscriptions", ns ?? "")) as string[];
    const out: Subscription[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      out.push({
        ns: reply[i] as string,
        event: reply[i + 1] as string,
        clientId: reply[i + 2] as string,
        group: decodeGroup(reply[i + 3] as string),
      });
    }
    return out;
  }

  async healthy() {
    if (this.closed || this.redis.status !== "ready") return false;
    try {
      return (await this.redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private check(): undefined;
  private check<T>(value: T): T;
  private check<T>(value?: T) {
    if (this.closed) throw new StoreError("UNAVAILABLE", "store is closed");
    return value;
  }

  private run(name: ScriptName, ...args: Arg[]): Promise<Reply> {
    const command = (this.redis as unknown as Record<ScriptName, (...a: Arg[]) => Promise<Reply>>)[name];
    return this.wrap(() => command.call(this.redis, this.prefix, ...args));
  }

  private async wrap<T>(op: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await op();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError("UNAVAILABLE", `redis: ${(err as Error).message}`, { cause: err });
    }
  }
}

function toMessage(messageId: string, event: string, deliveries: number, body: string): Message {
  const [publishedAt, from, payload] = JSON.parse(body) as [number, string | null, unknown];
  return { messageId, event, payload, publishedAt, from, deliveries };
}

/**
 * Deletes every key under `prefix` (SCAN + UNLINK, never FLUSHALL: the Redis may be shared):
 * for tests, benchmarks and operators retiring a prefix.
 */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    admin.disconnect();
  }
}
