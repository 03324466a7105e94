--[[
  A page of the subscriptions, by namespace, event and clientId.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns, or "" for every namespace
    [3] after: the previous page's last namespace, or ""
    [4] after: the previous page's last "<event>\n<clientId>", or ""
    [5] limit

  Output: {cursor ns, cursor member, ns, event, clientId, groupEnc, ...}, cursor "" "" after the last page
]]
local only, afterNs, afterM, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = { '', '' }
local n = 0
local lastNs, lastM
local function take(ns, from)
  for _, m in ipairs(redis.call('ZRANGEBYLEX', P .. 'subs:' .. ns, from, '+', 'LIMIT', 0, limit - n + 1)) do
    if n == limit then
      out[1], out[2] = lastNs, lastM
      return false
    end
    local sep = string.find(m, '\n', 1, true)
    local ev, client = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    out[#out + 1] = ns
    out[#out + 1] = ev
    out[#out + 1] = client
    out[#out + 1] = redis.call('HGET', P .. 'sub:' .. ns .. '|' .. ev, client) or ''
    lastNs, lastM = ns, m
    n = n + 1
  end
  return true
end
eachNamespaceFrom(only, afterNs, afterM, take)
return out
