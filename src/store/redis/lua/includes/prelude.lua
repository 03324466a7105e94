--[[
  Shared by every script: it is put in front of each one when the scripts are loaded.
  ARGV[1] of every script is the key prefix P. Keys (all under P; ns never contains "|"):
    seq                      INCR counter: one number per stored message (FIFO = store order)
    m:<ns>|<id>              HASH b (JSON [publishedAt, from, payload]), e (event),
                             x (expiresAt or ""), r (refs: queue entries + dead letters)
    q:<ns>|<queue>:r         ZSET seq -> id, entries ready to claim
    q:<ns>|<queue>:l         ZSET leaseUntil -> id, leased entries
    q:<ns>|<queue>:o         ZSET seq -> id, the same leased entries by store order
    q:<ns>|<queue>:s         HASH id -> "seq,deliveries,leaseUntil,noTtl,owner", only for
                             entries ever claimed or requeued (absent = fresh, 0 deliveries)
    q:<ns>|<queue>:e         HASH event -> entries of that event (pending counts by event)
    qs:<ns>                  ZSET (lex) queues of the namespace that hold entries (stats)
    n:<ns>                   HASH pending -> entries in the namespace's queues
    nss                      ZSET (lex) namespaces
    sub:<ns>|<event>         HASH clientId -> "" (own queue) or ":"+group
    cs:<ns>|<clientId>       HASH event -> same, the client's side of the subscriptions
    subs:<ns>                ZSET (lex) "<event>\n<clientId>", the subscriptions in order (views)
    rooms:<ns>               ZSET (lex) rooms with members
    rm:<ns>|<room>           ZSET (lex) the room's members' clientIds
    cr:<ns>|<clientId>       SET the client's rooms
    k2:<ns>|<#scope>:<scope>|<key>  STRING "<windowEnd>\n<ids json>" (dedup per publisher), Redis TTL
    k:<ns>|<key>             the same, namespace-wide (layout 1): still honoured until it expires
    ttl                      ZSET expiresAt -> "<ns>\n<queue>\n<id>" (sweep)
    d:<ns>                   ZSET order -> "<queue>\n<id>" dead letters, oldest first
    dd:<ns>                  HASH "<queue>\n<id>" -> "reason,deadAt,deliveries"
    di:<ns>|<id>             SET queues holding a dead letter of <id>
    dseq                     INCR counter for dead-letter order
    version                  STRING the layout: absent = 1, "2" since rooms (see migrate-*.lua)
  Message bodies are JSON [publishedAt, from, payload] or, for a room message, [..., room].
]]
local P = ARGV[1]
local function qk(ns, q, s) return P .. 'q:' .. ns .. '|' .. q .. ':' .. s end
local function mk(ns, id) return P .. 'm:' .. ns .. '|' .. id end
local function num(x) return string.format('%.0f', x) end
local function tmember(ns, q, id) return ns .. '\n' .. q .. '\n' .. id end

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
local function queueSize(ns, q)
  return redis.call('ZCARD', qk(ns, q, 'r')) + redis.call('ZCARD', qk(ns, q, 'l'))
end
-- Counts entries into the namespace; a queue that gets one is listed among those holding entries.
local function entriesAdded(ns, q, n)
  redis.call('HINCRBY', P .. 'n:' .. ns, 'pending', n)
  redis.call('ZADD', P .. 'qs:' .. ns, 0, q)
end
-- Counts an entry out of the namespace; a queue left empty is no longer listed.
local function entryRemoved(ns, q)
  redis.call('HINCRBY', P .. 'n:' .. ns, 'pending', -1)
  if queueSize(ns, q) == 0 then redis.call('ZREM', P .. 'qs:' .. ns, q) end
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
  entryRemoved(ns, q)
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
  local member = q .. '\n' .. id
  if redis.call('HSET', P .. 'dd:' .. ns, member, reason .. ',' .. num(now) .. ',' .. num(deliveries)) == 0 then
    decref(ns, id)
  end
  redis.call('ZADD', P .. 'd:' .. ns, redis.call('INCR', P .. 'dseq'), member)
  redis.call('SADD', P .. 'di:' .. ns .. '|' .. id, q)
end
-- Moves a queue's oldest entries (ready or leased) to dead letters while it holds more than
-- maxLen, at most `budget` of them. Returns the size left and how many were moved.
local function dropOldest(ns, q, size, maxLen, now, budget)
  local dropped = 0
  while size > maxLen and dropped < budget do
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
  return size, dropped
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
-- A view over one namespace (only ~= '') or every one from afterNs on, by name: take(ns, from)
-- reads each from its lex bound (after the cursor's member in the cursor's namespace) and says
-- false once the page is full.
local function eachNamespaceFrom(only, afterNs, afterMember, take)
  local namespaces
  if only ~= '' then
    namespaces = { only }
  else
    namespaces = redis.call('ZRANGEBYLEX', P .. 'nss', afterNs == '' and '-' or '[' .. afterNs, '+')
  end
  for _, ns in ipairs(namespaces) do
    local from = '-'
    if ns == afterNs and afterMember ~= '' then from = '(' .. afterMember end
    if not take(ns, from) then return end
  end
end
