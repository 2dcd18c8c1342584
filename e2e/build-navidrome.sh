#!/usr/bin/env bash
# Builds a release of Navidrome from the Go module proxy into the e2e cache and prints the
# binary's path. Usage: build-navidrome.sh v0.63.2
#
# A throwaway module outside the repo requires github.com/navidrome/navidrome at that version
# and builds its main package (`go install pkg@version` refuses modules with replace
# directives, and Navidrome's go.mod replaces go.senan.xyz/taglib with a fork: replace lines
# of a dependency are ignored, so this copies them from the release's own go.mod).
# cgo is needed for mattn/go-sqlite3; in v0.63.2 TagLib is the wasm-based go-taglib (no system
# library). v0.61.2 links TagLib >= 2.0 through cgo (`pkg-config --define-prefix taglib`):
# NDP_E2E_TAGLIB=<prefix> (build-taglib.sh's static build) is then put first in
# PKG_CONFIG_PATH, so the binary carries TagLib and needs no LD_LIBRARY_PATH.
# The module zip has no web UI (ui/build holds only .gitkeep): the server runs, its UI is
# empty; e2e/ui.sh builds the UI separately when a screenshot is wanted.
set -euo pipefail
version=${1:?usage: build-navidrome.sh vX.Y.Z}
cache=${NDP_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ndp-e2e}
dir=$cache/navidrome-$version
bin=$dir/navidrome
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi
mkdir -p "$dir/mod"
cd "$dir/mod"
export GOFLAGS=-mod=mod CGO_ENABLED=1 GOTOOLCHAIN=local
if [[ -n ${NDP_E2E_TAGLIB:-} ]]; then
  export PKG_CONFIG_PATH=$NDP_E2E_TAGLIB/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
fi
cat > go.mod <<MOD
module ndp-e2e/navidrome-$version

go 1.25
MOD
go get "github.com/navidrome/navidrome@$version" >&2
src=$(go list -m -f '{{.Dir}}' github.com/navidrome/navidrome)
grep -E '^replace ' "$src/go.mod" >> go.mod || true
# Navidrome's own go.sum (authenticated with the release's module zip) vouches for every
# dependency, as in a checkout of the release. Without it v0.61.2 cannot be built here: its
# TagLib fork github.com/deluan/go-taglib@v0.0.0-20260407173416-cf47afbaa67a is served by the
# module proxy (hashes equal to that go.sum) but the checksum database answers 404 for it, so
# `go` refuses the unverified go.mod ("verifying go.mod: ... 404 Not Found").
sort -u -o go.sum go.sum "$src/go.sum"
go mod download >&2
# The same tags and version stamps as Navidrome's Makefile (`make build`).
go build -trimpath -tags netgo,sqlite_fts5 \
  -ldflags "-X github.com/navidrome/navidrome/consts.gitTag=$version -X github.com/navidrome/navidrome/consts.gitSha=module-proxy" \
  -o "$bin.tmp" github.com/navidrome/navidrome >&2
mv "$bin.tmp" "$bin"
echo "$bin"
