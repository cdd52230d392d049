#!/usr/bin/env bash
# Usage: scripts/install-image.sh TARBALL PREFIX
#
# Installs reaper from its npm tarball into PREFIX (PREFIX/bin/reaper) the way the
# container image does: this script IS the image's install step (the Dockerfile runs it),
# and CI runs it in a clean temporary prefix (scripts/check-pack.sh), so the image cannot
# drift from what is tested. It uses the node and npm first on PATH, and needs python3,
# make and a C++ compiler: better-sqlite3 is always built from source here, against the
# headers of that node, never downloaded prebuilt.
set -euo pipefail
tarball=${1:?usage: scripts/install-image.sh TARBALL PREFIX}
prefix=${2:?usage: scripts/install-image.sh TARBALL PREFIX}
[[ -f $tarball ]] || { echo "no tarball at $tarball" >&2; exit 1; }

# The native addon is compiled against the headers of the node that will run it. Any
# nodedir in an npmrc (one may point at another Node.js) is overridden by that node's own.
nodedir=$(dirname "$(dirname "$(command -v node)")")
[[ -f $nodedir/include/node/node_version.h ]] || { echo "no Node.js headers under $nodedir/include/node" >&2; exit 1; }
export npm_config_nodedir=$nodedir npm_config_build_from_source=true

start=$SECONDS
# --allow-scripts: npm releases that hold back dependency install scripts would skip the
# addon's build; naming it keeps the one script reaper needs.
npm install --global --prefix "$prefix" --omit=dev --no-audit --no-fund --loglevel=error \
  --allow-scripts=better-sqlite3 "$tarball"
echo "installed in $((SECONDS - start)) s with Node.js $(node --version)" >&2

# What the addon's build leaves beside the binary (object files, SQLite's sources) is
# not needed at run time: better-sqlite3 loads build/Release/better_sqlite3.node only.
addon=$prefix/lib/node_modules/orphan-reaper/node_modules/better-sqlite3
[[ -f $addon/build/Release/better_sqlite3.node ]] || { echo "better-sqlite3 was not built" >&2; exit 1; }
find "$addon/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$addon/build/Release" -mindepth 1 -maxdepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
rm -rf "$addon/deps" "$addon/src"

"$prefix/bin/reaper" --version
