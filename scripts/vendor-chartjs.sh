#!/usr/bin/env bash
# Copy Chart.js's UMD build from the npm registry into the dashboard app's static files.
# The copy is committed (the servers need no network); rerun this script to upgrade:
#   scripts/vendor-chartjs.sh 4.6.1
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-4.6.1}"
dest=dashboard/static/dashboard/vendor
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "chart.js@${version}" >/dev/null && tar xzf chart.js-*.tgz)
mkdir -p "$dest"
# Without its source map: the map is 1 MB, and a dangling sourceMappingURL makes
# collectstatic's manifest storage (DEBUG off) fail, so the reference goes too.
sed '/^\/\/# sourceMappingURL=/d' "$tmp/package/dist/chart.umd.min.js" > "$dest/chart.umd.min.js"
cp "$tmp/package/LICENSE.md" "$dest/chart.js-LICENSE.md"
echo "$version" > "$dest/chart.js-VERSION"
echo "Chart.js $version -> $dest/chart.umd.min.js"
