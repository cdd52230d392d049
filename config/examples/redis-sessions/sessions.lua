-- The resource protocol v1 (docs/resource-protocol.md) for session hashes in Redis, run
-- atomically by the server: ARGV[1] is the operation, ARGV[2] the request reaper sent
-- (list: one JSON object; delete: one JSON line per key), ARGV[3] the key prefix that is
-- the scope. A session is a hash `PREFIX<id>` with the fields `user` (its owner), `created`
-- (ISO 8601) and, optionally, `pinned`.
local op, request, prefix = ARGV[1], ARGV[2], ARGV[3]

local function inScope(key)
  return type(key) == 'string' and string.sub(key, 1, #prefix) == prefix
end

-- The hash's fields and values in the server's order: any change to the session changes it.
local function fingerprint(key)
  return redis.sha1hex(table.concat(redis.call('HGETALL', key), '\0'))
end

local function record(key)
  if not inScope(key) or redis.call('TYPE', key).ok ~= 'hash' then return nil end
  local fields = redis.call('HGETALL', key)
  local f = {}
  for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
  local attributes = {}
  if f.user then attributes.user = f.user end
  if f.pinned then attributes.pinned = f.pinned end
  return cjson.encode({
    id = key,
    fingerprint = fingerprint(key),
    createdAt = f.created or cjson.null,
    bytes = redis.call('MEMORY', 'USAGE', key),
    attributes = attributes,
  })
end

local out = {}
if op == 'list' then
  local req = cjson.decode(request)
  if type(req.ids) == 'table' then
    for _, key in ipairs(req.ids) do
      local line = record(key)
      if line then table.insert(out, line) end
    end
    table.insert(out, '{"next":null}')
    return out
  end
  local cursor = req.cursor
  if cursor == cjson.null then cursor = '0' end
  local page = redis.call('SCAN', cursor, 'MATCH', prefix .. '*', 'COUNT', req.limit)
  for _, key in ipairs(page[2]) do
    local line = record(key)
    if line then table.insert(out, line) end
  end
  if page[1] == '0' then
    table.insert(out, '{"next":null}')
  else
    table.insert(out, cjson.encode({ next = page[1] }))
  end
elseif op == 'delete' then
  for line in string.gmatch(request, '[^\n]+') do
    local item = cjson.decode(line)
    local result
    if not inScope(item.id) or redis.call('EXISTS', item.id) == 0 then
      result = 'absent'
    elseif redis.call('TYPE', item.id).ok ~= 'hash' or fingerprint(item.id) ~= item.fingerprint then
      result = 'changed'
    else
      redis.call('DEL', item.id)
      result = 'deleted'
    end
    table.insert(out, cjson.encode({ id = item.id, result = result }))
  end
else
  return redis.error_reply('unknown operation ' .. tostring(op))
end
return out
