--[[
  Ends subscriptions and drops the client's queued entries of those events (and a group's,
  when no member is left for the event).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] clientId
    [4..] events

  Output: entries dropped
]]
local ns, client = ARGV[2], ARGV[3]
local dropped = 0
local function dropEvent(q, ev)
  local ek = qk(ns, q, 'e')
  if not redis.call('HGET', ek, ev) then return end
  for _, id in ipairs(redis.call('ZRANGE', qk(ns, q, 'l'), 0, -1)) do
    if bodyMeta(ns, id) == ev and removeEntry(ns, q, id) then dropped = dropped + 1 end
  end
  local after = '-inf'
  while redis.call('HGET', ek, ev) do
    local ids = redis.call('ZRANGEBYSCORE', qk(ns, q, 'r'), after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1000)
    if #ids == 0 then break end
    for j = 1, #ids, 2 do
      after = '(' .. ids[j + 1]
      if bodyMeta(ns, ids[j]) == ev and removeEntry(ns, q, ids[j]) then dropped = dropped + 1 end
    end
  end
end
for i = 4, #ARGV do
  local ev = ARGV[i]
  local sk = P .. 'sub:' .. ns .. '|' .. ev
  local enc = redis.call('HGET', sk, client)
  if enc then
    redis.call('HDEL', sk, client)
    redis.call('HDEL', P .. 'cs:' .. ns .. '|' .. client, ev)
    if redis.call('HLEN', sk) == 0 then redis.call('SREM', P .. 'ev:' .. ns, ev) end
    dropEvent('c:' .. client, ev)
    if enc ~= '' then
      local still = false
      for _, v in ipairs(redis.call('HVALS', sk)) do
        if v == enc then still = true; break end
      end
      if not still then dropEvent('g:' .. string.sub(enc, 2), ev) end
    end
  end
end
return dropped
