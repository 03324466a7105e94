--[[
  Stores a publish (one message or a batch) in each target queue, all or nothing: idempotency key
  per publisher, `to`, a room, routing by payload or fan-out, queue limits (reject, or drop-oldest
  of at most `maxDrops` entries per queue here: the caller trims the rest in steps, trim-0.lua).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] idempotency key's scope (the publisher)
    [4] idempotency key, or ""
    [5] now
    [6] dedup window (ms)
    [7] max queue length (0: unlimited)
    [8] overflow policy: "reject" | "drop-oldest"
    [9] n, the number of messages
    [10] the message ids as JSON (remembered with the key)
    [11] maxDrops
    then per message: id, event, body, expiresAt|"", hasFrom 0/1, from, echo 0/1, room|"",
    route|"", nTo (-1: no `to`), then nTo client ids

  Output: {1, idsJson} duplicate | {2, message} queue full |
    {0, dropped, nQueues, queue..., entries stored in each queue..., queue still over the limit...}
]]
local ns, scope, key, now, window = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local maxLen, overflow, n, idsJson = tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]), ARGV[10]
local maxDrops = tonumber(ARGV[11])
local dk
if key ~= '' then
  dk = P .. 'k2:' .. ns .. '|' .. #scope .. ':' .. scope .. '|' .. key
  -- A namespace-wide key of layout 1 counts until it expires.
  local seen = redis.call('GET', dk) or redis.call('GET', P .. 'k:' .. ns .. '|' .. key)
  if seen then
    local sep = string.find(seen, '\n', 1, true)
    if sep and tonumber(string.sub(seen, 1, sep - 1)) > now then
      return { 1, string.sub(seen, sep + 1) }
    end
  end
end
local msgs = {}
local subsCache, roomCache = {}, {}
local added, order = {}, {}
local i = 12
for m = 1, n do
  local msg = { id = ARGV[i], ev = ARGV[i + 1], body = ARGV[i + 2], x = ARGV[i + 3] }
  local hasFrom, from, echo = ARGV[i + 4] == '1', ARGV[i + 5], ARGV[i + 6] == '1'
  local room, route, nto = ARGV[i + 7], ARGV[i + 8], tonumber(ARGV[i + 9])
  i = i + 10
  local targets, seen = {}, {}
  local function add(q)
    if not seen[q] then
      seen[q] = true
      targets[#targets + 1] = q
      if not added[q] then added[q] = 0; order[#order + 1] = q end
      added[q] = added[q] + 1
    end
  end
  local mine = function(client) return echo or not hasFrom or client ~= from end
  if nto >= 0 then
    for t = 0, nto - 1 do add('c:' .. ARGV[i + t]) end
    i = i + nto
  elseif room ~= '' then
    local members = roomCache[room]
    if not members then
      members = redis.call('ZRANGE', P .. 'rm:' .. ns .. '|' .. room, 0, -1)
      roomCache[room] = members
    end
    for _, client in ipairs(members) do
      if mine(client) then add('c:' .. client) end
    end
  else
    local sk = P .. 'sub:' .. ns .. '|' .. msg.ev
    if route ~= '' and (not hasFrom or route ~= from) and redis.call('HEXISTS', sk, route) == 1 then
      add('c:' .. route)
    else
      local subs = subsCache[msg.ev]
      if not subs then
        subs = redis.call('HGETALL', sk)
        subsCache[msg.ev] = subs
      end
      for j = 1, #subs, 2 do
        local client, enc = subs[j], subs[j + 1]
        if enc ~= '' then add('g:' .. string.sub(enc, 2))
        elseif mine(client) then add('c:' .. client) end
      end
    end
  end
  msg.targets = targets
  msgs[m] = msg
end
if maxLen > 0 and overflow == 'reject' then
  for _, q in ipairs(order) do
    local size = queueSize(ns, q)
    if size + added[q] > maxLen then
      return { 2, 'queue ' .. q .. ' holds ' .. size .. ' of ' .. maxLen }
    end
  end
end
local seq0 = redis.call('INCRBY', P .. 'seq', n) - n
local dropped, stored = 0, 0
local sizes, budget = {}, {}
for m = 1, n do
  local msg = msgs[m]
  if #msg.targets > 0 then
    local seq = seq0 + m
    local bk = mk(ns, msg.id)
    redis.call('HSET', bk, 'b', msg.body, 'e', msg.ev, 'x', msg.x)
    local refs = 0
    for _, q in ipairs(msg.targets) do
      if redis.call('ZADD', qk(ns, q, 'r'), 'NX', seq, msg.id) == 1 then
        refs = refs + 1
        stored = stored + 1
        countEvent(ns, q, msg.ev, 1)
        if msg.x ~= '' then redis.call('ZADD', P .. 'ttl', msg.x, tmember(ns, q, msg.id)) end
        if maxLen > 0 then
          local size = sizes[q]
          if size then size = size + 1 else size = queueSize(ns, q) end
          local d
          size, d = dropOldest(ns, q, size, maxLen, now, budget[q] or maxDrops)
          budget[q] = (budget[q] or maxDrops) - d
          dropped = dropped + d
          sizes[q] = size
        end
      end
    end
    if redis.call('HINCRBY', bk, 'r', refs) <= 0 then redis.call('DEL', bk) end
  end
end
if #order > 0 then
  local qsk = P .. 'qs:' .. ns
  for _, q in ipairs(order) do redis.call('ZADD', qsk, 0, q) end
  redis.call('HINCRBY', P .. 'n:' .. ns, 'pending', stored)
  redis.call('ZADD', P .. 'nss', 0, ns)
end
if dk then
  redis.call('SET', dk, num(now + window) .. '\n' .. idsJson, 'PX', math.max(1, window) + 60000)
end
local out = { 0, dropped, #order }
for _, q in ipairs(order) do out[#out + 1] = q end
for _, q in ipairs(order) do out[#out + 1] = added[q] end
for _, q in ipairs(order) do
  if sizes[q] and sizes[q] > maxLen then out[#out + 1] = q end
end
return out
