--[[
  Durable subscriptions of one client to some events (idempotent; a new group replaces the old).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] clientId
    [4] group, encoded: "" (own queue) or ":" .. group
    [5..] events

  Output: 0
]]
local ns, client, enc = ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV do
  local ev = ARGV[i]
  redis.call('HSET', P .. 'sub:' .. ns .. '|' .. ev, client, enc)
  redis.call('HSET', P .. 'cs:' .. ns .. '|' .. client, ev, enc)
  redis.call('ZADD', P .. 'subs:' .. ns, 0, ev .. '\n' .. client)
end
redis.call('ZADD', P .. 'nss', 0, ns)
return 0
