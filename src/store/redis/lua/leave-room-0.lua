--[[
  Ends a client's membership of a room; its queued room messages stay. A room lives while it has
  members.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] room
    [4] clientId

  Output: 1 when it was a member, else 0
]]
local ns, room, client = ARGV[2], ARGV[3], ARGV[4]
local rk = P .. 'rm:' .. ns .. '|' .. room
if redis.call('ZREM', rk, client) == 0 then return 0 end
redis.call('SREM', P .. 'cr:' .. ns .. '|' .. client, room)
if redis.call('ZCARD', rk) == 0 then redis.call('ZREM', P .. 'rooms:' .. ns, room) end
return 1
