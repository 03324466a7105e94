--[[
  A page of the namespaces, by name, with their counts.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] after: the previous page's last namespace, or ""
    [3] limit

  Output: {more 0/1, ns, queues, pending, subscriptions, rooms, deadLetters, ...}
]]
local after, limit = ARGV[2], tonumber(ARGV[3])
local names = redis.call('ZRANGEBYLEX', P .. 'nss', after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, limit + 1)
local out = { #names > limit and 1 or 0 }
for k = 1, math.min(#names, limit) do
  local ns = names[k]
  out[#out + 1] = ns
  out[#out + 1] = redis.call('ZCARD', P .. 'qs:' .. ns)
  out[#out + 1] = tonumber(redis.call('HGET', P .. 'n:' .. ns, 'pending') or '0')
  out[#out + 1] = redis.call('ZCARD', P .. 'subs:' .. ns)
  out[#out + 1] = redis.call('ZCARD', P .. 'rooms:' .. ns)
  out[#out + 1] = redis.call('ZCARD', P .. 'd:' .. ns)
end
return out
