#!/usr/bin/env bash
# Property tests, then every cargo-fuzz target: a replay of its corpus (seeds, inputs it
# grew here, regressions/) and SECONDS of fuzzing (default 10). Exits non-zero on any
# failure; the last line is "N passed, M failed" (N: targets + property tests).
#   fuzz/run.sh [SECONDS]        fuzz/run.sh 3600 for a long campaign
# FUZZ_CACHE       where cargo-fuzz is installed (default ~/.cache/discord-presence-fuzz)
# FUZZ_JOBS        targets fuzzed at once (default 1)
# FUZZ_TARGETS     targets to run (default: all)
# FUZZ_KEEP_GOING  1: go on after a crash (libFuzzer fork mode), counting crashes
# FUZZ_RELEASE     1: no overflow checks, as the shipped wasm (default: checks on)
# FUZZ_RUNS        stop a target after this many executions (or SECONDS, whichever first)
# Grown corpora: fuzz/target/corpus/; logs: fuzz/target/logs/<run>/; crash inputs:
# fuzz/artifacts/<target>/. Runs at the same time share the corpora, nothing else.
set -uo pipefail
secs=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
nightly=nightly-2026-05-19
cf_version=0.13.2
cache=${FUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/discord-presence-fuzz}/cargo-fuzz-$cf_version
mkdir -p "$here/target/logs" && work=$(mktemp -d "$here/target/logs/$(date +%Y%m%d-%H%M%S)-XXXX") && cd "$here" || exit 1

rustup toolchain list | grep -q "^$nightly" || rustup toolchain install "$nightly" --profile minimal || exit 1
[ -x "$cache/bin/cargo-fuzz" ] || cargo install cargo-fuzz --version "$cf_version" --locked --root "$cache" || exit 1
export PATH=$cache/bin:$PATH

passed=0 failed=0
echo "== property tests (stable)"
cargo test -p props >"$work/props.log" 2>&1; rc=$?
grep -E '^test |test result|panicked|^error|minimal failing' "$work/props.log"
read -r p f < <(awk '/test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    END { print p + 0, f + 0 }' "$work/props.log")
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1 && tail -n 20 "$work/props.log"
passed=$((passed + p)) failed=$((failed + f))

# ratelimit's input is a list of two-byte steps with no magic value to find: compare
# tracing would only slow it (2.3x), so it is built apart without it.
tdir() { local d=$here/target${FUZZ_RELEASE:+/no-overflow-checks}; [ "$1" = ratelimit ] && d+=/no-trace-compares; echo "$d"; }
fuzz() { # fuzz build|run TARGET [ARGS…]
    local flags=(-s none --target-dir "$(tdir "$2")")
    [ -n "${FUZZ_RELEASE:-}" ] && flags+=(-O)
    [ "$2" = ratelimit ] && flags+=(--no-trace-compares)
    cargo "+$nightly" fuzz "$1" "${flags[@]}" "${@:2}"
}
targets=${FUZZ_TARGETS:-$(cargo "+$nightly" fuzz list)}
echo "== building fuzz targets ($nightly)"
built=1
for t in $targets; do fuzz build "$t" 2>&1 | tail -n 1 || built=0; done
if [ $built = 0 ]; then
    echo "$passed passed, $((failed + $(echo $targets | wc -w))) failed"
    exit 1
fi

run() { # target → work/<target>.result: "ok|FAIL executions crashes seconds"
    local t=$1 log=$work/$1.log ok=ok len=8192 keep=()
    local dirs=("$here/target/corpus/$t" "$here/corpus/$t") reg=()
    mkdir -p "${dirs[0]}"
    [ -d "$here/regressions/$t" ] && reg=("$here/regressions/$t")
    [ "$t" = ratelimit ] && len=512
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fuzz run "$t" "${dirs[@]}" "${reg[@]}" -- -runs=0 >"$log" 2>&1 || ok=FAIL
    local t0=$SECONDS
    fuzz run "$t" "${dirs[@]}" -- -max_total_time="$secs" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} -timeout=10 -max_len=$len \
        -dict="$here/json.dict" -print_final_stats=1 "${keep[@]}" >>"$log" 2>&1 || ok=FAIL
    local took=$((SECONDS - t0))
    local execs crashes
    execs=$(grep -oE 'number_of_executed_units: [0-9]+|^#[0-9]+: ' "$log" | tail -n 1 | grep -oE '[0-9]+')
    crashes=$(grep -oE 'oom/timeout/crash: [0-9/]+' "$log" | tail -n 1 | awk -F/ '{print $NF}')
    [ "${crashes:-0}" != 0 ] && ok=FAIL
    [ $ok = FAIL ] && [ "${crashes:-0}" = 0 ] && crashes=1
    echo "$ok ${execs:-0} ${crashes:-0} $took" >"$work/$t.result"
}
export -f run fuzz tdir; export nightly secs here work
echo "== fuzzing: ${secs}s per target, ${FUZZ_JOBS:-1} at a time"
printf '%s\n' $targets | xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c 'run {}'

printf '%-10s %-4s %12s %9s %8s\n' target ok execs exec/s crashes
for t in $targets; do
    read -r ok execs crashes took <"$work/$t.result"
    printf '%-10s %-4s %12s %9s %8s\n' "$t" "$ok" "$execs" $((execs / (took > 0 ? took : 1))) "$crashes"
    if [ "$ok" = ok ]; then passed=$((passed + 1)); else
        failed=$((failed + 1))
        # Where each failing input panics (replayed, as fork mode keeps no messages).
        for f in $(ls -t "$here/artifacts/$t"/crash-* "$here/artifacts/$t"/timeout-* 2>/dev/null | head -n 100) $(grep -lE 'panicked|ERROR' "$work/$t.log"); do
            [ "$f" = "$work/$t.log" ] && cat "$f" || "$(tdir "$t")/x86_64-unknown-linux-gnu/release/$t" "$f" 2>&1
        done | grep -oE 'panicked at [^ ]+|ERROR: libFuzzer: [a-z-]+|required directory.*' | sort | uniq -c | sed 's/^/    /'
        ls -t "$here/artifacts/$t" 2>/dev/null | head -n 1 | sed "s|^|    latest: fuzz/artifacts/$t/|"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
