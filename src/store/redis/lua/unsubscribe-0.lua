--[[
  Ends subscriptions. Their queued entries are dropped after, in steps (drop-event-0.lua): this
  says which queues and events, and up to which store order (entries stored later stay).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] clientId
    [4..] events

  Output: {upTo, queue, event, queue, event, ...}: the client's own queue for each event, and a
  group's when no member is left for the event
]]
local ns, client = ARGV[2], ARGV[3]
local out = { tonumber(redis.call('GET', P .. 'seq') or '0') }
for i = 4, #ARGV do
  local ev = ARGV[i]
  local sk = P .. 'sub:' .. ns .. '|' .. ev
  local enc = redis.call('HGET', sk, client)
  if enc then
    redis.call('HDEL', sk, client)
    redis.call('HDEL', P .. 'cs:' .. ns .. '|' .. client, ev)
    redis.call('ZREM', P .. 'subs:' .. ns, ev .. '\n' .. client)
    out[#out + 1] = 'c:' .. client
    out[#out + 1] = ev
    if enc ~= '' then
      local still = false
      for _, v in ipairs(redis.call('HVALS', sk)) do
        if v == enc then still = true; break end
      end
      if not still then
        out[#out + 1] = 'g:' .. string.sub(enc, 2)
        out[#out + 1] = ev
      end
    end
  end
end
return out
