--[[
  Leases up to `limit` claimable entries of a queue, oldest first; expired leases return to
  the ready set first, expired entries are removed, exhausted ones dead-lettered.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] queue
    [4] consumer
    [5] limit
    [6] now
    [7] lease (ms)
    [8] max deliveries (0: never dead-letter)
    [9] event filter, or ""

  Output: {expired, deadLettered, id, event, deliveries, body, ...}
]]
local ns, q, consumer, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local now, leaseMs, maxDel, ev = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local rk, lk, ok = qk(ns, q, 'r'), qk(ns, q, 'l'), qk(ns, q, 'o')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', lk, '-inf', num(now))) do
  local st = getState(ns, q, id)
  redis.call('ZREM', lk, id)
  redis.call('ZREM', ok, id)
  if st then
    redis.call('ZADD', rk, st.seq, id)
    st.lu = 0
    setState(ns, q, id, st)
  else
    entryRemoved(ns, q)
  end
end
local out = { 0, 0 }
local got, expired, dead = 0, 0, 0
local after = '-inf'
local chunk = limit + 16
if ev ~= '' then chunk = math.max(chunk, 256) end
local untilStr = num(now + leaseMs)
while got < limit do
  local ids = redis.call('ZRANGEBYSCORE', rk, after, '+inf', 'WITHSCORES', 'LIMIT', 0, chunk)
  if #ids == 0 then break end
  for j = 1, #ids, 2 do
    local id, seq = ids[j], ids[j + 1]
    after = '(' .. seq
    local b = redis.call('HMGET', mk(ns, id), 'b', 'e', 'x')
    if not b[1] then
      redis.call('ZREM', rk, id)
      redis.call('HDEL', qk(ns, q, 's'), id)
      entryRemoved(ns, q)
    elseif ev == '' or b[2] == ev then
      local st = getState(ns, q, id)
      local nt = st and st.nt
      if b[3] ~= '' and not nt and tonumber(b[3]) <= now then
        unlink(ns, q, id, b[2], b[3])
        decref(ns, id)
        expired = expired + 1
      elseif maxDel > 0 and st and st.d >= maxDel then
        toDead(ns, q, id, b[2], b[3], st.d, 'max-deliveries', now)
        dead = dead + 1
      else
        local d = (st and st.d or 0) + 1
        redis.call('ZREM', rk, id)
        redis.call('ZADD', lk, untilStr, id)
        redis.call('ZADD', ok, seq, id)
        setState(ns, q, id, { seq = tonumber(seq), d = d, lu = now + leaseMs, nt = nt, owner = consumer })
        out[#out + 1] = id
        out[#out + 1] = b[2]
        out[#out + 1] = d
        out[#out + 1] = b[1]
        got = got + 1
        if got >= limit then break end
      end
    end
  end
end
out[1] = expired
out[2] = dead
return out
