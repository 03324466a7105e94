--[[
  Deletes dead letters for good.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3..] message ids

  Output: dead letters dropped
]]
local ns = ARGV[2]
local n, seen = 0, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ik = P .. 'di:' .. ns .. '|' .. id
    for _, q in ipairs(redis.call('SMEMBERS', ik)) do
      local member = q .. '\n' .. id
      if redis.call('ZREM', P .. 'd:' .. ns, member) == 1 then
        redis.call('HDEL', P .. 'dd:' .. ns, member)
        decref(ns, id)
        n = n + 1
      end
    end
    redis.call('DEL', ik)
  end
end
return n
