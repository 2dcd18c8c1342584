#!/usr/bin/env bash
# Builds Navidrome v0.63.2 with its web UI, for the web UI scenario (webui_test.go) and the
# screenshot of the plugin page (e2e/run.sh --screenshot). The module zip from the Go module
# proxy has the UI's sources but not the built UI (ui/build holds only .gitkeep), so this
# copies the release's module source out of the module cache, builds the UI with npm
# (ui/package-lock.json, packages from the npm registry) and the server with `go build`, as
# upstream's `make build` does.
# Prints the binary's path. The copy stays in the cache, outside the repository.
set -euo pipefail
version=${1:-v0.63.2}
cache=${NDP_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ndp-e2e}
dir=$cache/navidrome-$version-ui
bin=$dir/navidrome
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi
export GOFLAGS=-mod=mod CGO_ENABLED=1 GOTOOLCHAIN=local
# The module source, downloaded (and checksum-verified) from the Go module proxy.
src=$(cd /tmp && go mod download -json "github.com/navidrome/navidrome@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -d $src ]] || { echo "cannot download github.com/navidrome/navidrome@$version" >&2; exit 1; }
rm -rf "$dir/src"
mkdir -p "$dir"
cp -r "$src" "$dir/src"
chmod -R u+w "$dir/src"
chmod +x "$dir/src/ui/bin/"*.sh # module zips keep no exec bits (postinstall runs one)
cd "$dir/src/ui"
npm ci --no-audit --no-fund --loglevel=error >&2
npm run build >&2
cd "$dir/src"
go build -trimpath -tags netgo,sqlite_fts5 \
  -ldflags "-X github.com/navidrome/navidrome/consts.gitTag=$version -X github.com/navidrome/navidrome/consts.gitSha=module-proxy" \
  -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
