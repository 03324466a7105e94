--[[
  One step of drop-oldest after an enqueue left a queue far over the limit: moves at most `max`
  of its oldest entries to dead letters.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] queue
    [4] max queue length
    [5] now
    [6] max

  Output: {dropped, 1 while still over the limit else 0}
]]
local ns, q, maxLen = ARGV[2], ARGV[3], tonumber(ARGV[4])
local size, dropped = dropOldest(ns, q, queueSize(ns, q), maxLen, tonumber(ARGV[5]), tonumber(ARGV[6]))
return { dropped, size > maxLen and 1 or 0 }
