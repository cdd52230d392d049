#!/bin/sh
# reaper's resource handler for Redis session hashes (docs/resource-protocol.md): hands the
# request on stdin to sessions.lua, which the server runs atomically (a conditional delete is
# one script: compare the fingerprint, then DEL). REDIS_HOST, REDIS_PORT, SESSION_PREFIX.
exec redis-cli -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}" --raw \
  EVAL "$(cat "$(dirname "$0")/sessions.lua")" 0 "$REAPER_OP" "$(cat)" "${SESSION_PREFIX:-session:}"
