--[[
  Clears a consumer's leases in a queue (all, or the ids given) so they can be claimed again.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] queue
    [4] consumer
    [5] hasIds: 1 when ids follow, 0 for every lease of the consumer
    [6..] ids

  Output: leases released
]]
local ns, q, consumer, hasIds = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local rk, lk, ok = qk(ns, q, 'r'), qk(ns, q, 'l'), qk(ns, q, 'o')
local ids
if hasIds then
  ids = {}
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', lk, 0, -1)
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', lk, id) then
    local st = getState(ns, q, id)
    if st and st.owner == consumer then
      redis.call('ZREM', lk, id)
      redis.call('ZREM', ok, id)
      redis.call('ZADD', rk, st.seq, id)
      st.lu = 0
      st.owner = ''
      setState(ns, q, id, st)
      n = n + 1
    end
  end
end
return n
