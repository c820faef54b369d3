#!/usr/bin/env bash
# test_cli_merchant.sh - `facepay merchant` end to end: create a merchant and a terminal, issue keys
# with different scopes, check them against a running `facepay serve` on the same DB (a
# payments-only key is refused a customer route, a customers key is not), revoke a key while the
# server runs and see it refused on the next request; and the CLI's error paths (unknown merchant,
# duplicate, bad scopes, malformed key id, missing --db, bad usage) with their exit codes.
# Exits 77 (ctest skip) when the models of scripts/setup.sh are missing (the server loads them).
# Environment: FACEPAY_BIN (set by ctest; default build/facepay), FACEPAY_CACHE.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
F=${FACEPAY_BIN:-$ROOT/build/facepay}
CACHE=${FACEPAY_CACHE:-$HOME/.cache/facepay}
[ -x "$F" ] || { echo "test_cli_merchant: FAIL: $F is not built" >&2; exit 1; }
for m in face_detection_short_range.tflite face_landmark.tflite MobileFaceNet.tflite; do
  [ -f "$CACHE/models/$m" ] || { echo "test_cli_merchant: SKIP: model $m is missing (scripts/setup.sh)"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/facepay-merchant.XXXXXX")
SRV=
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
failures=0
fail() { echo "test_cli_merchant: FAIL: $*" >&2; failures=$((failures + 1)); }
# expect RC DESCRIPTION -- COMMAND...: runs the command, checks its exit code, keeps its output in $OUT
expect() {
  local want=$1 what=$2; shift 3
  OUT=$("$@" 2>&1); local rc=$?
  [ "$rc" -eq "$want" ] || fail "$what: exit $rc, expected $want: $OUT"
}
# http METHOD PATH KEY: prints the status code of a request to the server (bash /dev/tcp, no curl)
http() {
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$1" "$2" "$3" >&3
  local line; IFS= read -r line <&3; exec 3<&- 3>&-
  echo "$line" | awk '{print $2}'
}

DB=$T/shop.db; K=$T/key
expect 0 "key generate" -- "$F" key generate "$K"
expect 0 "add" -- "$F" merchant add shop1 --name "Shop One" --db "$DB" --key "$K"
expect 1 "add twice" -- "$F" merchant add shop1 --db "$DB" --key "$K"
echo "$OUT" | grep -q "already exists" || fail "add twice: no clear message: $OUT"
expect 0 "terminal" -- "$F" merchant terminal shop1 till1 --db "$DB" --key "$K"
expect 1 "terminal of an unknown merchant" -- "$F" merchant terminal nope till1 --db "$DB" --key "$K"
expect 0 "issue-key (default scopes)" -- "$F" merchant issue-key shop1 --db "$DB" --key "$K"
echo "$OUT" | grep -q "scopes payments (" || fail "default scopes are not payments only: $OUT"
PAYKEY=$(echo "$OUT" | tail -n 1)
expect 0 "issue-key customers" -- "$F" merchant issue-key shop1 --scopes customers,refunds --db "$DB" --key "$K"
CUSTKEY=$(echo "$OUT" | tail -n 1)
CUSTID=$(echo "$OUT" | sed -n 's/.*API key \([0-9a-f]*\),.*/\1/p')
[ "${#CUSTID}" -eq 16 ] || fail "no key id in: $OUT"
expect 1 "issue-key for an unknown merchant" -- "$F" merchant issue-key nope --db "$DB" --key "$K"
expect 2 "bad scopes" -- "$F" merchant issue-key shop1 --scopes bogus --db "$DB" --key "$K"
expect 1 "malformed key id" -- "$F" merchant revoke-key not-an-id --db "$DB" --key "$K"
expect 2 "no --db" -- "$F" merchant add shop2 --key "$K"
expect 2 "no verb" -- "$F" merchant
expect 2 "--scopes on another verb" -- "$F" merchant add shop2 --scopes all --db "$DB" --key "$K"

# the keys against a running server on the same DB
"$F" serve --db "$DB" --key "$K" --port 0 --bind 127.0.0.1 --threads 1 > "$T/serve.log" 2>&1 &
SRV=$!
PORT=
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$T/serve.log" | head -n 1)
  [ -n "$PORT" ] && break
  kill -0 "$SRV" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  fail "the server did not start: $(tail -n 5 "$T/serve.log")"
else
  s=$(http GET /v1/customers/nobody "$PAYKEY"); [ "$s" = 403 ] || fail "payments key on a customer route: HTTP $s, expected 403"
  s=$(http GET /v1/customers/nobody "$CUSTKEY"); [ "$s" = 404 ] || fail "customers key on a customer route: HTTP $s, expected 404"
  s=$(http GET /v1/payments/999 "$PAYKEY"); [ "$s" = 404 ] || fail "payments key on a payment route: HTTP $s, expected 404"
  expect 0 "revoke-key while the server runs" -- "$F" merchant revoke-key "$CUSTID" --db "$DB" --key "$K"
  s=$(http GET /v1/customers/nobody "$CUSTKEY"); [ "$s" = 401 ] || fail "revoked key: HTTP $s, expected 401"
  expect 0 "revoke twice" -- "$F" merchant revoke-key "$CUSTID" --db "$DB" --key "$K"
fi
[ "$failures" -eq 0 ] && echo "test_cli_merchant: ok" && exit 0
exit 1
