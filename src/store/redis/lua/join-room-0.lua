--[[
  Makes a client a durable member of a room (idempotent).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] room
    [4] clientId

  Output: 1 when it was not a member, else 0
]]
local ns, room, client = ARGV[2], ARGV[3], ARGV[4]
if redis.call('ZADD', P .. 'rm:' .. ns .. '|' .. room, 'NX', 0, client) == 0 then return 0 end
redis.call('SADD', P .. 'cr:' .. ns .. '|' .. client, room)
redis.call('ZADD', P .. 'rooms:' .. ns, 0, room)
redis.call('ZADD', P .. 'nss', 0, ns)
return 1
