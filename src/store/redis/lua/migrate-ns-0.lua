--[[
  Layout 1 → 2 for one namespace: its queue list becomes sorted and holds only queues with
  entries, its pending count is counted, its subscriptions get their sorted list (from the
  per-event hashes, whose list of events goes).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns

  Output: the namespace's pending entries
]]
local ns = ARGV[2]
local qsk = P .. 'qs:' .. ns
local queues
if redis.call('TYPE', qsk).ok == 'set' then
  queues = redis.call('SMEMBERS', qsk)
  redis.call('DEL', qsk)
else
  queues = redis.call('ZRANGE', qsk, 0, -1)
end
local pending = 0
for _, q in ipairs(queues) do
  local size = queueSize(ns, q)
  if size > 0 then
    redis.call('ZADD', qsk, 0, q)
    pending = pending + size
  else
    redis.call('ZREM', qsk, q)
  end
end
redis.call('HSET', P .. 'n:' .. ns, 'pending', pending)
local evk = P .. 'ev:' .. ns
for _, ev in ipairs(redis.call('SMEMBERS', evk)) do
  for _, client in ipairs(redis.call('HKEYS', P .. 'sub:' .. ns .. '|' .. ev)) do
    redis.call('ZADD', P .. 'subs:' .. ns, 0, ev .. '\n' .. client)
  end
end
redis.call('DEL', evk)
return pending
