#!/usr/bin/env bash
# ./build.sh         build dist/plugin.wasm and the reproducible dist/discord-presence.ndp
# ./build.sh test    build, then run every test (Rust units, size budget, Go harness, fuzz
#                    smoke run, real Navidrome end to end)
# ./build.sh bench   size and per-call cost in Navidrome's runtime (benches/run.sh)
# ./build.sh fuzz    long fuzzing campaign (fuzz/run.sh 600)
# Installs what it needs on a fresh machine: the wasm target and a pinned wasm-opt.
set -euo pipefail
cd "$(dirname "$0")"

TARGET=wasm32-unknown-unknown
BINARYEN=132.0.0
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/ndp-tools
WASM_OPT=$TOOLS/binaryen-$BINARYEN/node_modules/.bin/wasm-opt
# Same timestamp for every package entry, so two builds give the same bytes.
STAMP=198001010000

stage() { # name command...: run a stage, time it, remember the outcome
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  if "$@"; then STAGES+=("$name: ok ($((SECONDS - t0)) s)"); else
    STAGES+=("$name: FAILED ($((SECONDS - t0)) s)")
    FAILED=1
  fi
}

tools() {
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
  [ -x "$WASM_OPT" ] || npm install --silent --no-audit --no-fund --prefix "$TOOLS/binaryen-$BINARYEN" "binaryen@$BINARYEN"
}

build() {
  tools
  cargo build --quiet --release --locked --target "$TARGET"
  local raw=target/$TARGET/release/discord_presence.wasm
  mkdir -p dist
  # Only the features the module was compiled with (its target_features section).
  # shellcheck disable=SC2046
  "$WASM_OPT" -Oz --converge $(python3 tools/wasminfo.py --features "$raw") \
    --strip-debug --strip-producers --strip-target-features "$raw" -o dist/plugin.wasm
  package
  python3 tools/wasminfo.py --ndp dist/discord-presence.ndp dist/plugin.wasm
}

package() { # zip -X: no extra attributes; fixed mtime and mode; entries in a fixed order
  local tmp
  tmp=$(mktemp -d)
  cp manifest.json dist/plugin.wasm "$tmp/"
  chmod 644 "$tmp"/*
  TZ=UTC touch -t "$STAMP" "$tmp"/*
  (cd "$tmp" && TZ=UTC zip -q -X -D -9 plugin.ndp manifest.json plugin.wasm)
  mv "$tmp/plugin.ndp" dist/discord-presence.ndp
  rm -rf "$tmp"
}

harness() {
  (cd harness && PLUGIN_WASM="$PWD/../dist/plugin.wasm" PLUGIN_MANIFEST="$PWD/../manifest.json" go test -count=1 ./...)
}

run_tests() {
  STAGES=() FAILED=0
  stage "build" build
  stage "rust unit tests" cargo test --quiet --locked
  stage "size budget and interface" python3 tools/wasminfo.py --check size-budget.txt dist/plugin.wasm
  stage "go harness (Navidrome runtime)" harness
  [ -x fuzz/run.sh ] && stage "fuzz smoke run" fuzz/run.sh
  [ -x e2e/run.sh ] && stage "real Navidrome end to end" e2e/run.sh
  printf '%s\n' "${STAGES[@]}"
  return "$FAILED"
}

case "${1:-build}" in
  build) build ;;
  test) run_tests ;;
  bench) build && benches/run.sh ;;
  fuzz) fuzz/run.sh "${2:-600}" ;;
  *) echo "usage: $0 [build|test|bench|fuzz [seconds]]" >&2; exit 2 ;;
esac
