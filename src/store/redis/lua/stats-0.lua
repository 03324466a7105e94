--[[
  Entries stored and under a live lease, per non-empty queue.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] now
    [3] ns, or "" for every namespace

  Output: {ns, queue, pending, inFlight, ...}
]]
local now, only = ARGV[2], ARGV[3]
local nss
if only ~= '' then nss = { only } else nss = redis.call('SMEMBERS', P .. 'nss') end
local out = {}
for _, ns in ipairs(nss) do
  for _, q in ipairs(redis.call('SMEMBERS', P .. 'qs:' .. ns)) do
    local size = queueSize(ns, q)
    if size > 0 then
      out[#out + 1] = ns
      out[#out + 1] = q
      out[#out + 1] = size
      out[#out + 1] = redis.call('ZCOUNT', qk(ns, q, 'l'), '(' .. now, '+inf')
    end
  end
end
return out
