--[[
  Every subscription (of one namespace, or all).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns, or "" for every namespace

  Output: {ns, event, clientId, groupEnc, ...}
]]
local only = ARGV[2]
local nss
if only ~= '' then nss = { only } else nss = redis.call('SMEMBERS', P .. 'nss') end
local out = {}
for _, ns in ipairs(nss) do
  for _, ev in ipairs(redis.call('SMEMBERS', P .. 'ev:' .. ns)) do
    local subs = redis.call('HGETALL', P .. 'sub:' .. ns .. '|' .. ev)
    for j = 1, #subs, 2 do
      out[#out + 1] = ns
      out[#out + 1] = ev
      out[#out + 1] = subs[j]
      out[#out + 1] = subs[j + 1]
    end
  end
end
return out
