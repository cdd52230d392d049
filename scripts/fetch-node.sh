#!/usr/bin/env bash
# Usage: scripts/fetch-node.sh VERSION
#
# Puts Node.js VERSION (e.g. 22.23.5) in a cache directory and prints its bin directory.
# The binary comes from the npm registry's node-<platform>-<arch> package (the official
# build, headers included), so it needs nothing but the npm registry. Cache:
# $REAPER_CI_CACHE, default ~/.cache/reaper-ci; a second call is a no-op.
set -euo pipefail
version=${1:?usage: scripts/fetch-node.sh VERSION}
cache=${REAPER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reaper-ci}
package="node-$(node -p 'process.platform + "-" + process.arch')"
dir="$cache/node-$version"
bin="$dir/node_modules/$package/bin"
if [[ "$("$bin/node" --version 2>/dev/null)" != "v$version" ]]; then
  echo "fetching $package@$version into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$package@$version" >&2
  [[ "$("$bin/node" --version)" == "v$version" ]] || { echo "$package@$version did not give a working node" >&2; exit 1; }
fi
echo "$bin"
