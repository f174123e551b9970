#!/usr/bin/env bash
# Install the CRD validators that tests/artifacts/test_helm_chart.py runs (tests/crd/: npm packages pinned by exact
# version and integrity hash in package-lock.json) into a cache folder outside the repo.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)/tests/crd"
DEST="${LLMOBS_CRD_VALIDATORS:-$HOME/.cache/llmobs/crd-validators}"
STAMP="$DEST/.llmobs-lock-sha256"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -d "$DEST/node_modules" ]; then
  echo "CRD validators ready at $DEST"
  exit 0
fi
echo "installing CRD validators into $DEST"
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
# npm ci installs exactly the lockfile and checks every tarball's integrity hash; no install scripts run.
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" > "$STAMP"
