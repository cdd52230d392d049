#!/usr/bin/env bash
# Usage: scripts/sqlite-addon.sh NODE
#
# Makes node_modules/better-sqlite3 load under the Node.js executable NODE. better-sqlite3
# is a native addon built for one Node ABI (process.versions.modules); where no prebuilt
# binary can be downloaded, each ABI needs its own compile (about a minute of CPU, most of
# it SQLite's amalgamation). Binaries are kept per better-sqlite3 version and ABI in
# $REAPER_CI_CACHE (default ~/.cache/reaper-ci) and copied into place, so switching back
# and forth between Node versions compiles each ABI once. CI runs the Node versions one
# after the other; nothing else may use node_modules meanwhile.
set -euo pipefail
node=${1:?usage: scripts/sqlite-addon.sh NODE}
node=$(command -v "$node")
cd "$(dirname "$0")/.."
cache=${REAPER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reaper-ci}
module=node_modules/better-sqlite3
target=$module/build/Release/better_sqlite3.node
version=$("$node" -p "require('./$module/package.json').version")
key=$("$node" -p '`abi${process.versions.modules}-${process.platform}-${process.arch}`')
cached="$cache/better-sqlite3-$version-$key.node"
loads() { "$node" -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; }
# A new file renamed into place, never a rewrite of the loaded one: a process that has the
# old binary mapped keeps its copy.
put() { cp "$1" "$target.tmp.$$" && mv -f "$target.tmp.$$" "$target"; }

mkdir -p "$cache"
if [[ -f $target ]] && loads; then
  [[ -f $cached ]] || cp "$target" "$cached"
  exit 0
fi
if [[ -f $cached ]]; then
  put "$cached"
  loads && exit 0
  echo "the cached $cached does not load; building again" >&2
fi

# Build in a scratch copy, against the headers that ship with NODE (its install prefix).
nodedir=$(dirname "$(dirname "$node")")
[[ -f $nodedir/include/node/node_version.h ]] || { echo "no Node.js headers under $nodedir/include/node" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$module"/package.json "$module"/binding.gyp "$module"/deps "$module"/src "$scratch"/
echo "building better-sqlite3 $version for Node.js $("$node" --version) ($key)" >&2
start=$SECONDS
(
  cd "$scratch"
  PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$nodedir" npm_config_jobs=2 \
    npm run build-release --silent >build.log 2>&1 || { tail -n 30 build.log >&2; exit 1; }
)
echo "built in $((SECONDS - start)) s" >&2
mkdir -p "$(dirname "$target")"
cp "$scratch/build/Release/better_sqlite3.node" "$cached"
put "$cached"
loads || { echo "the new build does not load under $node" >&2; exit 1; }
