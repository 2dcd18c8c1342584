#!/usr/bin/env bash
# Size and per-call cost of the plugin in Navidrome's runtime, side by side with a
# floor (nine empty exports), a baseline written the ordinary way (std + extism-pdk +
# serde_json) and each of our tuning steps. Prints the tables and writes
# benches/results.md and benches/chart.svg.
#
#   benches/run.sh             full run (a few minutes; builds are cached)
#   BENCH_SCALE=0.1 benches/run.sh   fewer iterations, for a smoke run
#
# Environment:
#   PLUGIN_WASM     the module measured as "ours" (default: built here like the
#                   release, the last step of the waterfall)
#   WASM_OPT_FLAGS  wasm-opt flags of the release build (default: those of
#                   tools/wasm-opt.conf and the features the module uses, from
#                   tools/wasminfo.py)
#   NDP_BENCH_CACHE build cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/ndp-bench);
#                   nothing is built in the repo's target/ or dist/
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CACHE=${NDP_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ndp-bench}
SCALE=${BENCH_SCALE:-1}
# The release's wasm-opt version and flags (build.sh reads the same file).
conf() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$ROOT/tools/wasm-opt.conf"; }
BINARYEN_VERSION=$(conf binaryen)
OPT_FLAGS=$(conf flags)
TARGET=wasm32-unknown-unknown
OUT=$CACHE/out
BIN=$CACHE/npm/node_modules/binaryen/bin
# Rust's own default for wasm32 (1 MiB); the repo's .cargo/config.toml sets 32 KiB.
DEFAULT_STACK="-Clink-arg=-zstack-size=1048576"
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

say() { printf '\n== %s  (%ds)\n' "$*" "$(( $(date +%s) - START ))" >&2; }
mkdir -p "$OUT"

say "tools"
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi
if [ "$(node -p "require('$CACHE/npm/node_modules/binaryen/package.json').version" 2>/dev/null)" != "$BINARYEN_VERSION" ]; then
    npm install --prefix "$CACHE/npm" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION" >&2
fi
for t in cargo go node npm python3; do command -v $t >/dev/null || { echo "benches: $t is required" >&2; exit 1; }; done

# features <wasm>: the wasm-opt feature flags for a module.
features() {
    if [ -f "$ROOT/tools/wasminfo.py" ]; then
        python3 "$ROOT/tools/wasminfo.py" --features "$1"
    else
        echo "--mvp-features --enable-mutable-globals --enable-sign-ext --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int"
    fi
}

# fresh <out> <key>: <out> was made from the same inputs (its .key matches): skip the work.
fresh() { [ -f "$1" ] && [ -f "$1.key" ] && [ "$(cat "$1.key")" = "$2" ]; }
sha() { sha256sum "$@" | cut -c1-64 | tr '\n' ' '; }

# wasmopt <in> <out> [extra flags...]: the release's wasm-opt step.
wasmopt() {
    local in=$1 out=$2
    shift 2
    local flags key
    flags=${WASM_OPT_FLAGS:-$OPT_FLAGS $(features "$in")}
    key="$(sha "$in") $BINARYEN_VERSION $* $flags"
    fresh "$out" "$key" && return 0
    read -ra flags <<<"$flags"   # split on spaces only: a flag may hold a wildcard
    "$BIN/wasm-opt" "$in" "$@" "${flags[@]}" -o "$out"
    echo "$key" >"$out.key"
}

# twin <in> <out>: the counting twin of a module.
twin() {
    local key
    key="$(sha "$1" "$HERE/tools/twin.py") $BINARYEN_VERSION"
    fresh "$2" "$key" && return 0
    python3 "$HERE/tools/twin.py" "$BIN" "$1" "$2"
    echo "$key" >"$2.key"
}

# cargo_wasm <name> <crate dir> <artifact> [VAR=value...] [-- cargo args]: release build
# into the cache, copied to $OUT/<name>.wasm.
cargo_wasm() {
    local name=$1 dir=$2 artifact=$3
    shift 3
    local envs=() args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --) shift; args=("$@"); break ;;
            *) envs+=("$1"); shift ;;
        esac
    done
    local t0
    t0=$(date +%s%N)
    (cd "$dir" && env "${envs[@]}" cargo build --quiet --release --target "$TARGET" \
        --target-dir "$CACHE/target/$name" "${args[@]}")
    cp "$CACHE/target/$name/$TARGET/release/$artifact.wasm" "$OUT/$name.wasm"
    printf '  %-16s %8d bytes  (%.1fs)\n' "$name" "$(stat -c %s "$OUT/$name.wasm")" "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" >&2
}

# The cargo defaults a release build has without the repo's profile.
DEFAULT_PROFILE=(CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_STRIP=debuginfo)
TUNED_PROFILE=(CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_STRIP=true)

say "builds (cache: $CACHE)"
# Two lanes: a release build's last step (LTO, one codegen unit) runs on one core.
plugin_lane() {
    cargo_wasm step1 "$ROOT" discord_presence RUSTFLAGS="$DEFAULT_STACK" "${DEFAULT_PROFILE[@]}"
    cargo_wasm step2 "$ROOT" discord_presence "${DEFAULT_PROFILE[@]}"
    cargo_wasm step3 "$ROOT" discord_presence "${DEFAULT_PROFILE[@]}" CARGO_PROFILE_RELEASE_OPT_LEVEL=z
    cargo_wasm step4 "$ROOT" discord_presence
    cargo_wasm names "$ROOT" discord_presence CARGO_PROFILE_RELEASE_STRIP=debuginfo
    cargo_wasm step6pre "$HERE/wee_alloc" wee_alloc_plugin
    cargo_wasm floorpre "$HERE/floor" floor
    cargo_wasm parsers-own "$HERE/parsers" parsers
    cargo_wasm parsers-miniserde "$HERE/parsers" parsers -- --features miniserde
}
other_lane() {
    # -mod=mod: harness/ may have gained a dependency since go.sum was written.
    (cd "$HERE/runtime" && go build -mod=mod -o "$CACHE/bin/runtime" .)
    # The ordinary build: cargo's defaults and Rust's default stack (RUSTFLAGS set, even
    # empty, replaces the repo's target rustflags).
    cargo_wasm baseline "$HERE/baseline" baseline RUSTFLAGS=""
    cargo_wasm baselinetunedpre "$HERE/baseline" baseline "${TUNED_PROFILE[@]}"
}
plugin_lane & PLUGIN_LANE=$!
other_lane & OTHER_LANE=$!
wait $PLUGIN_LANE
wait $OTHER_LANE

say "wasm-opt (binaryen $BINARYEN_VERSION)"
wasmopt "$OUT/step4.wasm" "$OUT/step5.wasm" &
wasmopt "$OUT/step6pre.wasm" "$OUT/step6.wasm"
wait
wasmopt "$OUT/floorpre.wasm" "$OUT/floor.wasm" &
wasmopt "$OUT/baselinetunedpre.wasm" "$OUT/baselinetuned.wasm"
wait
wasmopt "$OUT/parsers-own.wasm" "$OUT/parsers-own.opt.wasm" &
wasmopt "$OUT/parsers-miniserde.wasm" "$OUT/parsers-miniserde.opt.wasm"
wait
# The size twin keeps the name section through wasm-opt (-g) and drops what the
# stripped release never has, so that wasm-opt sees the same module.
wasmopt "$OUT/names.wasm" "$OUT/names.opt.wasm" --strip-dwarf --strip-producers --strip-target-features -g

OURS=${PLUGIN_WASM:-$OUT/step5.wasm}
cp "$OURS" "$OUT/ours.wasm"

say "counting twins"
twin "$OUT/ours.wasm" "$OUT/ours.twin.wasm" &
twin "$OUT/floor.wasm" "$OUT/floor.twin.wasm"
wait
twin "$OUT/baseline.wasm" "$OUT/baseline.twin.wasm"

cat >"$OUT/modules.json" <<EOF
[
 {"name": "ours", "label": "ours", "kind": "ours", "wasm": "$OUT/ours.wasm", "twin": "$OUT/ours.twin.wasm"},
 {"name": "floor", "label": "floor (9 empty exports)", "kind": "floor", "wasm": "$OUT/floor.wasm", "twin": "$OUT/floor.twin.wasm"},
 {"name": "baseline", "label": "baseline: extism-pdk + serde, default release", "kind": "baseline", "wasm": "$OUT/baseline.wasm", "twin": "$OUT/baseline.twin.wasm"},
 {"name": "baselinetuned", "label": "baseline, our profile + wasm-opt", "kind": "baseline", "wasm": "$OUT/baselinetuned.wasm"},
 {"name": "step1", "label": "1 default release (opt 3, no LTO, 1 MiB stack)", "kind": "step", "wasm": "$OUT/step1.wasm"},
 {"name": "step2", "label": "2 + 32 KiB stack above the data", "kind": "step", "wasm": "$OUT/step2.wasm"},
 {"name": "step3", "label": "3 + opt-level z", "kind": "step", "wasm": "$OUT/step3.wasm"},
 {"name": "step4", "label": "4 + LTO, 1 CGU, panic abort, strip", "kind": "step", "wasm": "$OUT/step4.wasm"},
 {"name": "step5", "label": "5 + wasm-opt (release)", "kind": "step", "wasm": "$OUT/step5.wasm"},
 {"name": "step6", "label": "6 wee_alloc instead of the bump allocator", "kind": "step", "wasm": "$OUT/step6.wasm"}
]
EOF

say "runtime (Navidrome's runtime through harness/, scale $SCALE)"
# The runner bounds every loop; the timeout only guards against a plugin that hangs.
(cd "$HERE/runtime" && timeout 1200 "$CACHE/bin/runtime" -modules "$OUT/modules.json" -manifest "$ROOT/manifest.json" \
    -out "$OUT/runtime.json" -scale "$SCALE")

say "report"
DIST=""
[ -f "$ROOT/dist/plugin.wasm" ] && DIST="$ROOT/dist/plugin.wasm"
python3 "$HERE/tools/report.py" --out "$OUT" --runtime "$OUT/runtime.json" --names "$OUT/names.opt.wasm" \
    --dist "$DIST" --md "$HERE/results.md" --svg "$HERE/chart.svg" --seconds "$(( $(date +%s) - START ))" --load-start "$LOAD_START"
