--[[
  Layout 1 → 2, first step: the namespace list becomes sorted (a ZSET). Each namespace then gets
  migrate-ns-0.lua, and the caller sets `version` to 2. Every step can run twice, or on two hubs
  at once, with the same result.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix

  Output: the namespaces to migrate; none when the layout is 2 already
]]
if redis.call('GET', P .. 'version') == '2' then return {} end
local k = P .. 'nss'
if redis.call('TYPE', k).ok == 'set' then
  local all = redis.call('SMEMBERS', k)
  redis.call('DEL', k)
  for _, ns in ipairs(all) do redis.call('ZADD', k, 0, ns) end
end
local namespaces = redis.call('ZRANGE', k, 0, -1)
-- Nothing written yet: this is layout 2 from the start.
if #namespaces == 0 then redis.call('SET', P .. 'version', '2') end
return namespaces
