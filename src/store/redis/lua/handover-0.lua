--[[
  Fresh-message handover: leases a publish's new entries of a queue (just stored by enqueue-0.lua)
  to an online consumer, unless the queue holds something that consumer could claim before them
  (a ready entry older than the first of them, or a lease that ran out).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] queue
    [4] consumer
    [5] now
    [6] lease (ms)
    [7] limit
    [8..] the new entries' ids, in queue order

  Output: the ids leased, a prefix of the ids given
]]
local ns, q, consumer = ARGV[2], ARGV[3], ARGV[4]
local now, leaseMs, limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local rk, lk, ok = qk(ns, q, 'r'), qk(ns, q, 'l'), qk(ns, q, 'o')
local out = {}
-- A lease that ran out makes its entry claimable first.
if #redis.call('ZRANGEBYSCORE', lk, '-inf', num(now), 'LIMIT', 0, 1) > 0 then return out end
if redis.call('ZRANGE', rk, 0, 0)[1] ~= ARGV[8] then return out end
local untilStr = num(now + leaseMs)
for i = 8, math.min(#ARGV, 7 + limit) do
  local id = ARGV[i]
  local seq = redis.call('ZSCORE', rk, id)
  -- Claimed meanwhile: the rest stays for the claims, in order.
  if not seq then break end
  redis.call('ZREM', rk, id)
  redis.call('ZADD', lk, untilStr, id)
  redis.call('ZADD', ok, seq, id)
  setState(ns, q, id, { seq = tonumber(seq), d = 1, lu = now + leaseMs, nt = false, owner = consumer })
  out[#out + 1] = id
end
return out
