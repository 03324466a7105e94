--[[
  Removes up to `max` entries whose TTL passed (one step of a sweep).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] now
    [3] max

  Output: {removed, examined}: the caller steps again while examined == max
]]
local now, max = ARGV[2], tonumber(ARGV[3])
local tk = P .. 'ttl'
local items = redis.call('ZRANGEBYSCORE', tk, '-inf', now, 'LIMIT', 0, max)
local removed = 0
for _, member in ipairs(items) do
  redis.call('ZREM', tk, member)
  local a = string.find(member, '\n', 1, true)
  local b = a and string.find(member, '\n', a + 1, true)
  if b then
    local ns, q, id = string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1), string.sub(member, b + 1)
    local st = getState(ns, q, id)
    if not (st and st.nt) and removeEntry(ns, q, id) then removed = removed + 1 end
  end
end
return { removed, #items }
