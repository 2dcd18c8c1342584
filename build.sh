#!/usr/bin/env bash
# ./build.sh           build dist/plugin.wasm and the reproducible dist/discord-presence.ndp
# ./build.sh test      build, then every test: Rust units, size budget, the benches' crates
#                      compile, manifest, Go harness,
#                      fuzz smoke run and real-Navidrome end to end (the last two once they exist)
# ./build.sh bench     build, then size and per-call cost in Navidrome's runtime (benches/run.sh)
# ./build.sh fuzz [S]  long fuzzing campaign (fuzz/run.sh, S seconds per target, default 600),
#                      then the concurrent harness over CONC_SEEDS (default 20000) seeds per scenario
# Installs what it needs on a fresh machine: the wasm target and a pinned wasm-opt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$PWD

target=wasm32-unknown-unknown
raw=target/$target/release/discord_presence.wasm
wasm=dist/plugin.wasm
ndp=dist/discord-presence.ndp
# wasm-opt from npm, cached outside the repo; its version and flags: tools/wasm-opt.conf.
conf() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' tools/wasm-opt.conf; }
binaryen_version=$(conf binaryen)
binaryen=${binaryen_version%%.*}
read -ra opt_flags <<<"$(conf flags)"
tools=${XDG_CACHE_HOME:-$HOME/.cache}/ndp-tools/binaryen-$binaryen
wasm_opt=$tools/node_modules/.bin/wasm-opt
stamp=${SOURCE_DATE_EPOCH:+@$SOURCE_DATE_EPOCH}   # time of every package entry (UTC)
stamp=${stamp:-1980-01-01 00:00:00}

usage() { echo "usage: ${0##*/} [test | bench | fuzz [seconds]]" >&2; exit "${1:-2}"; }
mode=${1:-build}
case $mode in
  build | test | bench) (($# <= 1)) || usage ;;
  fuzz) (($# <= 2)) || usage ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac

# ---- stages: each is timed; the last line lists them all ----
summary=() current="" failed=0
now() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
begin() { current=$1 t0=$(now); }
end() {
  local d=$(($(now) - t0))
  summary+=("$current $1 $((d / 1000)).$((d % 1000 / 100))s") current=""
}
# stage NAME CMD...: a failure stops the script (set -e applies inside CMD).
stage() { begin "$1"; "${@:2}"; end ok; }
# check NAME CMD...: a test stage; the later ones still run. set -e is suspended inside
# CMD, so CMD must be one command or an explicit && / || chain.
check() {
  echo "== $1"
  begin "$1"
  if "${@:2}"; then end ok; else end FAIL; failed=1; fi
}
finish() {
  local rc=$? verdict=PASS line
  [[ -z $current ]] || { end FAIL; rc=1; }
  ((rc == 0 && failed == 0)) || verdict=FAIL
  printf -v line '%s | ' "${summary[@]}"
  echo "build.sh $mode: ${line% | } => $verdict"
  exit $((rc ? rc : failed))
}
trap finish EXIT
quiet() { local out; out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }; }

# ---- build ----
ensure_tools() {
  rustup target list --installed | grep -qx "$target" || quiet rustup target add "$target"
  if ! "$wasm_opt" --version 2>/dev/null | grep -q "version $binaryen "; then
    command -v npm >/dev/null || { echo "npm is needed to install wasm-opt" >&2; return 1; }
    rm -rf "$tools.tmp"
    quiet npm install --prefix "$tools.tmp" --no-audit --no-fund "binaryen@$binaryen_version"
    rm -rf "$tools" && mv "$tools.tmp" "$tools"
    "$wasm_opt" --version | grep -q "version $binaryen "
  fi
}

optimize() {
  # Exactly the features the code uses: cargo's strip=true drops the target_features
  # section, so wasminfo.py decodes the instructions (all within wazero's CoreFeaturesV2).
  local out feats
  out=$(python3 tools/wasminfo.py --features "$raw")
  read -ra feats <<<"$out"
  mkdir -p dist
  "$wasm_opt" "$raw" "${opt_flags[@]}" "${feats[@]}" \
    --strip-debug --strip-producers --strip-target-features -o "$wasm.tmp"
  mv "$wasm.tmp" "$wasm"
}

package() {
  # manifest.json then plugin.wasm; fixed mode and time; zip -X: no extra fields, -D: no dirs.
  local tmp=dist/.pkg
  [[ -f manifest.json ]] || { echo "manifest.json is missing at the repo root" >&2; return 1; }
  rm -rf "$tmp" && mkdir "$tmp"
  cp manifest.json "$wasm" "$tmp/"
  chmod 0644 "$tmp"/*
  TZ=UTC touch -d "$stamp" "$tmp"/*
  (cd "$tmp" && TZ=UTC zip -q -X -D -9 out.ndp manifest.json plugin.wasm)
  mv "$tmp/out.ndp" "$ndp" && rm -rf "$tmp"
}

# ---- tests ----
harness() {
  [[ -f harness/go.mod ]] || { echo "harness: FAIL: harness/go.mod is missing" >&2; return 1; }
  (cd harness && PLUGIN_WASM="$root/$wasm" PLUGIN_MANIFEST="$root/manifest.json" \
    go test -count=1 ./...)
}
budget() {
  # The checker's own tests first: a bound it gets wrong would pass any module.
  python3 tools/test_wasminfo.py && python3 tools/wasminfo.py --check size-budget.txt "$wasm"
}
bench_crates() {
  # The benches compile the plugin's modules by path (the input parser alone, the plugin
  # with wee_alloc): a change of those modules must not break `./build.sh bench`.
  (cd benches/parsers && cargo check -q --locked --target "$target") &&
    (cd benches/wee_alloc && cargo check -q --locked --target "$target")
}
manifest() {
  # Navidrome's own manifest schema, from the Navidrome module the harness pins (harness/go.mod).
  local nd
  nd=$(cd harness && go mod download github.com/navidrome/navidrome &&
    go list -m -f '{{.Dir}}' github.com/navidrome/navidrome) &&
    python3 tools/check_manifest.py manifest.json "$wasm" "$nd/plugins/manifest-schema.json"
}
optional() { # optional NAME SCRIPT [ARGS...]: a check stage if SCRIPT exists yet
  if [[ -x $2 ]]; then check "$@"; else summary+=("$1 skipped(no $2)"); fi
}

concurrency_long() {
  # Many more seeded interleavings of the concurrent harness (CONC_SEEDS per scenario).
  (cd harness && PLUGIN_WASM="$root/$wasm" PLUGIN_MANIFEST="$root/manifest.json" \
    CONC_SEEDS=${CONC_SEEDS:-20000} go test -count=1 -run 'TestConcurrent$' -timeout 0 .)
}
if [[ $mode == fuzz ]]; then
  stage tools ensure_tools
  stage cargo-build cargo build -q --release --target "$target" --locked
  stage wasm-opt optimize
  check fuzz fuzz/run.sh "${2:-600}"
  check concurrency concurrency_long
  exit
fi

stage tools ensure_tools
stage cargo-build cargo build -q --release --target "$target" --locked
stage wasm-opt optimize
stage package package
python3 tools/wasminfo.py --ndp "$ndp" "$wasm"

case $mode in
  test)
    check cargo-test cargo test -q --locked
    check budget budget
    check bench-crates bench_crates
    check manifest manifest
    check harness harness
    optional fuzz-smoke fuzz/run.sh
    optional e2e e2e/run.sh
    ;;
  bench) check bench benches/run.sh ;;
esac
