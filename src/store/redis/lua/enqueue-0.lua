--[[
  Stores a publish (one message or a batch) in each target queue, all or nothing: dedup key,
  fan-out or `to`, queue limits (reject or drop-oldest).

  KEYS: none. Every key is built from the prefix ARGV[1] (see includes/prelude.lua), so all of
  them must live on one Redis (standalone or Sentinel, not Redis Cluster).
  ARGV[1] prefix
    [2] ns
    [3] idempotency key, or ""
    [4] now
    [5] dedup window (ms)
    [6] max queue length (0: unlimited)
    [7] overflow policy: "reject" | "drop-oldest"
    [8] n, the number of messages
    [9] the message ids as JSON (remembered with the key)
    then per message: id, event, body, expiresAt|"", hasFrom 0/1, from, echo 0/1,
    nTo (-1: no `to`), then nTo client ids

  Output: {1, idsJson} duplicate | {2, message} queue full | {0, dropped, queues...}
]]
local ns, key, now, window = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local maxLen, overflow, n, idsJson = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), ARGV[9]
local dk
if key ~= '' then
  dk = P .. 'k:' .. ns .. '|' .. key
  local seen = redis.call('GET', dk)
  if seen then
    local sep = string.find(seen, '\n', 1, true)
    if sep and tonumber(string.sub(seen, 1, sep - 1)) > now then
      return { 1, string.sub(seen, sep + 1) }
    end
  end
end
local msgs = {}
local subsCache = {}
local added, order = {}, {}
local i = 10
for m = 1, n do
  local msg = { id = ARGV[i], ev = ARGV[i + 1], body = ARGV[i + 2], x = ARGV[i + 3] }
  local hasFrom, from, echo, nto = ARGV[i + 4] == '1', ARGV[i + 5], ARGV[i + 6] == '1', tonumber(ARGV[i + 7])
  i = i + 8
  local targets, seen = {}, {}
  local function add(q)
    if not seen[q] then
      seen[q] = true
      targets[#targets + 1] = q
      if not added[q] then added[q] = 0; order[#order + 1] = q end
      added[q] = added[q] + 1
    end
  end
  if nto >= 0 then
    for t = 0, nto - 1 do add('c:' .. ARGV[i + t]) end
    i = i + nto
  else
    local subs = subsCache[msg.ev]
    if not subs then
      subs = redis.call('HGETALL', P .. 'sub:' .. ns .. '|' .. msg.ev)
      subsCache[msg.ev] = subs
    end
    for j = 1, #subs, 2 do
      local client, enc = subs[j], subs[j + 1]
      if enc ~= '' then add('g:' .. string.sub(enc, 2))
      elseif echo or not hasFrom or client ~= from then add('c:' .. client) end
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
local dropped = 0
local sizes = {}
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
        countEvent(ns, q, msg.ev, 1)
        if msg.x ~= '' then redis.call('ZADD', P .. 'ttl', msg.x, tmember(ns, q, msg.id)) end
        if maxLen > 0 then
          local size = sizes[q]
          if size then size = size + 1 else size = queueSize(ns, q) end
          while size > maxLen do
            local rh = redis.call('ZRANGE', qk(ns, q, 'r'), 0, 0, 'WITHSCORES')
            local oh = redis.call('ZRANGE', qk(ns, q, 'o'), 0, 0, 'WITHSCORES')
            local oid = rh[1]
            if oh[1] and (not rh[1] or tonumber(oh[2]) < tonumber(rh[2])) then oid = oh[1] end
            if not oid then break end
            local oev, ox = bodyMeta(ns, oid)
            local st = getState(ns, q, oid)
            toDead(ns, q, oid, oev, ox, st and st.d or 0, 'overflow', now)
            dropped = dropped + 1
            size = size - 1
          end
          sizes[q] = size
        end
      end
    end
    if redis.call('HINCRBY', bk, 'r', refs) <= 0 then redis.call('DEL', bk) end
  end
end
if #order > 0 then
  local qsk = P .. 'qs:' .. ns
  for _, q in ipairs(order) do redis.call('SADD', qsk, q) end
  redis.call('SADD', P .. 'nss', ns)
end
if dk then
  redis.call('SET', dk, num(now + window) .. '\n' .. idsJson, 'PX', math.max(1, window) + 60000)
end
local out = { 0, dropped }
for _, q in ipairs(order) do out[#out + 1] = q end
return out
