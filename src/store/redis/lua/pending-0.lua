--[[
  Counts what the client would be sent: its own queue plus its groups' entries not leased by
  others.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] clientId
    [4] now
    [5] event filter, or ""

  Output: count
]]
local ns, client, now, ev = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local total = 0
for k, q in ipairs(consumerQueues(ns, client)) do
  if ev ~= '' then
    total = total + tonumber(redis.call('HGET', qk(ns, q, 'e'), ev) or '0')
  else
    total = total + queueSize(ns, q)
  end
  if k > 1 then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk(ns, q, 'l'), '(' .. now, '+inf')) do
      local st = getState(ns, q, id)
      if st and st.owner ~= client and (ev == '' or bodyMeta(ns, id) == ev) then total = total - 1 end
    end
  end
end
return total
