--[[
  A page of the namespace's rooms, by name, with their member counts.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] after: the previous page's last room, or ""
    [4] limit

  Output: {more 0/1, room, members, ...}
]]
local ns, after, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local names = redis.call('ZRANGEBYLEX', P .. 'rooms:' .. ns, after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, limit + 1)
local out = { #names > limit and 1 or 0 }
for k = 1, math.min(#names, limit) do
  out[#out + 1] = names[k]
  out[#out + 1] = redis.call('ZCARD', P .. 'rm:' .. ns .. '|' .. names[k])
end
return out
