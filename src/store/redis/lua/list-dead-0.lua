--[[
  A page of the namespace's dead letters, oldest first.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] after: the previous page's cursor, or "-inf"
    [4] limit

  Output: {cursor, queue, id, event, body, meta, ...}, meta = "reason,deadAt,deliveries",
    cursor "" after the last page
]]
local ns, after, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local items = redis.call('ZRANGEBYSCORE', P .. 'd:' .. ns, after, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
local out = { '' }
local n = 0
for j = 1, #items, 2 do
  if n == limit then
    out[1] = '(' .. items[j - 1]
    break
  end
  n = n + 1
  local member = items[j]
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
