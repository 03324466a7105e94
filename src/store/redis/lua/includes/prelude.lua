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
    qs:<ns>                  SET queues of the namespace (stats)
    nss                      SET namespaces
    sub:<ns>|<event>         HASH clientId -> "" (own queue) or ":"+group
    cs:<ns>|<clientId>       HASH event -> same, the client's side of the subscriptions
    ev:<ns>                  SET events with subscribers
    k:<ns>|<key>             STRING "<windowEnd>\n<ids json>" (dedup), Redis TTL for GC
    ttl                      ZSET expiresAt -> "<ns>\n<queue>\n<id>" (sweep)
    d:<ns>                   ZSET order -> "<queue>\n<id>" dead letters, oldest first
    dd:<ns>                  HASH "<queue>\n<id>" -> "reason,deadAt,deliveries"
    di:<ns>|<id>             SET queues holding a dead letter of <id>
    dseq                     INCR counter for dead-letter order
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
  local member = q .. '\n' .. id
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
