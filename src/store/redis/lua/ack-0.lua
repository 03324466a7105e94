--[[
  Deletes entries from the client's own queue (leased or not) and from its groups' queues
  where it holds the lease.

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] clientId
    [4..] message ids

  Output: the ids removed
]]
local ns, client = ARGV[2], ARGV[3]
local queues = consumerQueues(ns, client)
local removed, seen = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local ev, x = bodyMeta(ns, id)
    if ev then
      for k, q in ipairs(queues) do
        local mine = k == 1
        if not mine then
          local st = getState(ns, q, id)
          mine = st ~= nil and st.owner == client
        end
        if mine and unlink(ns, q, id, ev, x) then
          decref(ns, id)
          removed[#removed + 1] = id
          break
        end
      end
    end
  end
end
return removed
