--[[
  One step of an unsubscribe: drops a queue's entries of one event stored up to `upTo` (store
  order), ready or leased, reading at most `max` of each. Entries keep their store order when
  claimed or released, so a step sees every entry of its range wherever it is.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] queue
    [4] event
    [5] after: the previous step's cursor, or "-inf"
    [6] upTo
    [7] max

  Output: {dropped, cursor}, cursor "" when done
]]
local ns, q, ev, after, upTo, max = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if not redis.call('HGET', qk(ns, q, 'e'), ev) then return { 0, '' } end
local function range(set)
  return redis.call('ZRANGEBYSCORE', qk(ns, q, set), after, upTo, 'WITHSCORES', 'LIMIT', 0, max)
end
local ready, leased = range('r'), range('o')
-- Up to where both ranges are read whole.
local hi = upTo
if #ready == 2 * max then hi = math.min(hi, tonumber(ready[#ready])) end
if #leased == 2 * max then hi = math.min(hi, tonumber(leased[#leased])) end
local dropped = 0
for _, list in ipairs({ ready, leased }) do
  for j = 1, #list, 2 do
    if tonumber(list[j + 1]) <= hi and bodyMeta(ns, list[j]) == ev and removeEntry(ns, q, list[j]) then
      dropped = dropped + 1
    end
  end
end
if hi >= upTo then return { dropped, '' } end
return { dropped, '(' .. num(hi) }
