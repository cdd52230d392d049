#!/usr/bin/env bash
# Usage: scripts/check-pack.sh
#
# The release artifact, checked as a user gets it: `npm pack` makes the tarball,
# scripts/install-image.sh (the container image's install step) puts it into a clean
# temporary prefix, and the installed `reaper` runs from a directory outside the clone
# with nothing from it: `--version`, `demo`, an audit of the embedded SQLite default
# with a metrics file, a dry-run reap with a plan file, and the bash completion. As in
# the image, it runs as uid 10001 (when started as root) with the install read-only and
# HOME unwritable; state, plans, metrics and TMPDIR live in a separate "volume" directory.
# Uses the node and npm first on PATH (CI puts the image's Node.js line there).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
chmod 755 "$work"
fail() { echo "check-pack: $*" >&2; exit 1; }

echo "== npm pack"
(cd "$repo" && npm pack --pack-destination "$work" --loglevel=error >/dev/null)
tarball=$(ls "$work"/orphan-reaper-*.tgz)
listing=$(tar -tzf "$tarball")
for f in package/package.json package/bin/reaper package/dist/cli/main.js package/dist/index.d.ts package/LICENSE package/README.md package/CHANGELOG.md package/config/manifest.schema.json package/config/openapi.json; do
  grep -qx "$f" <<<"$listing" || fail "$f is missing from the tarball"
done
if grep -E '^package/(src|test|bench|scripts|node_modules)/|\.map$' <<<"$listing"; then fail "the tarball holds files a user does not need (above)"; fi
echo "$(wc -l <<<"$listing") files, $(du -k "$tarball" | cut -f1) KiB"

echo "== install into a clean prefix"
prefix=$work/prefix
start=$SECONDS
"$repo/scripts/install-image.sh" "$tarball" "$prefix"
echo "install took $((SECONDS - start)) s; installed size $(du -sh "$prefix" | cut -f1)"
if grep -rlF "$repo" "$prefix" >/dev/null 2>&1; then grep -rlF "$repo" "$prefix" | head >&2; fail "the install refers to the clone at $repo"; fi

echo "== run it as the image does"
volume=$work/volume
mkdir -p "$volume/tmp" "$volume/metrics" "$work/home" "$work/node/bin"
# The node that runs it, where uid 10001 can read it (as /usr/local/bin/node in the image).
cp "$(command -v node)" "$work/node/bin/node"
chmod -R a-w "$prefix" "$work/node"
chmod 555 "$work/home"
touch "$work/installed"
as_image=()
if [[ $(id -u) == 0 ]]; then
  chown -R 10001:10001 "$volume"
  as_image=(setpriv --reuid=10001 --regid=10001 --clear-groups)
else
  echo "(not root: running as $(id -un), not uid 10001)"
fi
run() {
  (cd "$volume" && env -i PATH="$prefix/bin:$work/node/bin:/usr/bin:/bin" HOME="$work/home" TMPDIR="$volume/tmp" \
    "${as_image[@]}" "$@")
}
out=$(run reaper --version) || fail "reaper --version failed"
grep -q "npm package orphan-reaper" <<<"$out" && grep -q "Node.js $(node --version)" <<<"$out" || fail "unexpected --version: $out"
run reaper demo "$volume/demo" --output json >"$work/demo.json" || fail "reaper demo failed"
# Installed, the demo's "try next" lines name the command as installed, not `npx reaper`.
run reaper demo "$volume/demo-table" >"$work/demo.txt" || fail "reaper demo (table) failed"
grep -q '^  reaper audit -c ' "$work/demo.txt" && ! grep -q 'npx reaper' "$work/demo.txt" || fail "the installed demo's try-next lines do not say 'reaper …': $(grep -A2 'Try next' "$work/demo.txt")"
run node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const s = r.audit?.summary ?? r.summary;
  if (!s || !(s.orphaned > 0)) { console.error("no orphans in the demo:", JSON.stringify(r).slice(0, 500)); process.exit(1); }
' "$work/demo.json" || fail "the demo found no orphans"
run reaper audit -c "$volume/demo/reaper.yaml" --output json --metrics-file "$volume/metrics/reaper.prom" >"$work/audit.json" || fail "reaper audit failed"
run node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (r.kind !== "audit" || !(r.summary?.scanned > 0)) { console.error(JSON.stringify(r).slice(0, 500)); process.exit(1); }
' "$work/audit.json" || fail "the audit printed no audit document"
grep -q '^reaper_resources{' "$volume/metrics/reaper.prom" || fail "no metrics in $volume/metrics/reaper.prom"
[[ -f $volume/demo/.reaper/state.db ]] || fail "the embedded SQLite state store was not written"
run reaper reap -c "$volume/demo/reaper.yaml" --output json --plan-out "$volume/plan.ndjson" >/dev/null || fail "reaper reap (dry run) failed"
[[ -s $volume/plan.ndjson ]] || fail "no plan file"
run bash --norc -c 'source <(reaper completion bash) && COMP_WORDS=(reaper au) COMP_CWORD=1 && _reaper && [[ ${COMPREPLY[*]} == audit ]]' || fail "the bash completion does not complete"
written=$(find "$prefix" "$work/node" "$work/home" -newer "$work/installed" | head)
[[ -z $written ]] || fail "the run wrote into the install or HOME: $written"
echo "check-pack: ok ($(node --version))"
