#!/usr/bin/env bash
# Refreshes reports/assets/echarts.min.js (the charting library inlined into every HTML report)
# from the npm registry: `bash scripts/vendor-echarts.sh [VERSION]`. Needs npm; the checksum
# check keeps a re-run of the pinned version byte-identical. Record a new version and its
# sha256 in reports/assets/README.md and below.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-6.1.0}"
pinned_sha256="b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0"  # echarts 6.1.0 dist/echarts.min.js
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "echarts@$version" >/dev/null)
tar -xzf "$work/echarts-$version.tgz" -C "$work" package/dist/echarts.min.js package/LICENSE package/NOTICE
sha="$(sha256sum "$work/package/dist/echarts.min.js" | cut -d' ' -f1)"
if [ "$version" = "6.1.0" ] && [ "$sha" != "$pinned_sha256" ]; then
  echo "vendor-echarts: echarts 6.1.0 has sha256 $sha, expected $pinned_sha256" >&2
  exit 1
fi
cp "$work/package/dist/echarts.min.js" reports/assets/echarts.min.js
cp "$work/package/LICENSE" reports/assets/ECHARTS-LICENSE
cp "$work/package/NOTICE" reports/assets/ECHARTS-NOTICE
echo "vendor-echarts: echarts $version (sha256 $sha) in reports/assets/"
