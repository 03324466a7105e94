--[[
  The namespace's dead letters, oldest first.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] limit

  Output: {queue, id, event, body, meta, ...}, meta = "reason,deadAt,deliveries"
]]
local ns, limit = ARGV[2], tonumber(ARGV[3])
local out = {}
if limit <= 0 then return out end
for _, member in ipairs(redis.call('ZRANGE', P .. 'd:' .. ns, 0, limit - 1)) do
  local a = string.find(member, '\n', 1, true)
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
return out
