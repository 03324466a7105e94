--[[
  Moves dead letters back to the tail of their queues, deliveries reset and no TTL.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3..] message ids

  Output: the queues touched
]]
local ns = ARGV[2]
local touched, tseen, seen = {}, {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ik = P .. 'di:' .. ns .. '|' .. id
    local queues = redis.call('SMEMBERS', ik)
    if #queues > 0 then
      local ev = redis.call('HGET', mk(ns, id), 'e')
      for _, q in ipairs(queues) do
        local member = q .. '\n' .. id
        if redis.call('ZREM', P .. 'd:' .. ns, member) == 1 then
          redis.call('HDEL', P .. 'dd:' .. ns, member)
          local seq = redis.call('INCR', P .. 'seq')
          if ev and redis.call('ZADD', qk(ns, q, 'r'), 'NX', seq, id) == 1 then
            setState(ns, q, id, { seq = seq, d = 0, lu = 0, nt = true, owner = '' })
            countEvent(ns, q, ev, 1)
            entriesAdded(ns, q, 1)
          elseif ev then
            decref(ns, id)
          end
          if not tseen[q] then tseen[q] = true; touched[#touched + 1] = q end
        end
      end
      redis.call('DEL', ik)
    end
  end
end
return touched
