--[[
  A page of the queues that hold entries, by namespace then queue name, with their counts.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] now
    [3] ns, or "" for every namespace
    [4] after: the previous page's last namespace, or ""
    [5] after: the previous page's last queue, or ""
    [6] limit

  Output: {cursor ns, cursor queue, ns, queue, pending, inFlight, ...}, cursor "" "" after the last page
]]
local now, only, afterNs, afterQ, limit = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local out = { '', '' }
local n = 0
-- Takes the namespace's queues from `from` on; false once the page is full and one more exists.
local function take(ns, from)
  for _, q in ipairs(redis.call('ZRANGEBYLEX', P .. 'qs:' .. ns, from, '+', 'LIMIT', 0, limit - n + 1)) do
    if n == limit then
      out[1], out[2] = out[#out - 3], out[#out - 2]
      return false
    end
    out[#out + 1] = ns
    out[#out + 1] = q
    out[#out + 1] = queueSize(ns, q)
    out[#out + 1] = redis.call('ZCOUNT', qk(ns, q, 'l'), '(' .. now, '+inf')
    n = n + 1
  end
  return true
end
eachNamespaceFrom(only, afterNs, afterQ, take)
return out
