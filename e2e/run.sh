#!/usr/bin/env bash
# End-to-end test: the plugin package in a real Navidrome, against a fake Discord, in a
# network+mount namespace of its own (see e2e/README.md).
#
#   e2e/run.sh                 # test dist/discord-presence.ndp (or NDP_E2E_PACKAGE)
#   e2e/run.sh -run Presence   # extra arguments go to `go test`
#   e2e/run.sh --screenshot    # only e2e/plugin-page.png: the plugin page in Navidrome's UI
#                              # (builds Navidrome with its web UI via npm, ~6 min once)
#
# Navidrome releases are built once from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/ndp-e2e (the first run takes a few minutes), and there too the
# static TagLib 2.0.2 that v0.61.2 links (build-taglib.sh, from Debian's source).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
start=$SECONDS
step() { printf '== e2e [%3ds] %s\n' $((SECONDS - start)) "$*"; }
apt_install() {
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    step "installing $* (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; }
  else
    echo "e2e: missing $* (Debian: apt-get install $*)" >&2; exit 1
  fi
}
screenshot=
if [[ ${1:-} == --screenshot ]]; then screenshot=1; shift; fi

# sox writes the test library.
command -v sox >/dev/null || apt_install sox libsox-fmt-base

step "Navidrome v0.63.2"
NDP_E2E_NAVIDROME=$("$here/build-navidrome.sh" v0.63.2)
export NDP_E2E_NAVIDROME

# v0.61.2 (newest release without PlaybackReport) links TagLib >= 2.0 through cgo
# (taglib_wrapper.cpp includes dsffile.h); Debian bookworm ships 1.13, so a static TagLib
# 2.0.2 is built from Debian trixie's source into the cache (build-taglib.sh, once).
step "TagLib 2.0.2 for Navidrome v0.61.2"
NDP_E2E_TAGLIB=$("$here/build-taglib.sh")
step "Navidrome v0.61.2"
NDP_E2E_NAVIDROME_061=$(NDP_E2E_TAGLIB=$NDP_E2E_TAGLIB "$here/build-navidrome.sh" v0.61.2)
export NDP_E2E_NAVIDROME_061

if [[ -z ${NDP_E2E_PACKAGE:-} ]]; then
  NDP_E2E_PACKAGE=$root/dist/discord-presence.ndp
  if [[ ! -f $NDP_E2E_PACKAGE ]]; then
    echo "e2e: $NDP_E2E_PACKAGE is missing: run ./build.sh first (or set NDP_E2E_PACKAGE)" >&2
    exit 1
  fi
fi
export NDP_E2E_PACKAGE
step "package $NDP_E2E_PACKAGE"

# Navidrome with its web UI (npm, a few minutes once, then cached) and Chromium: the web UI
# scenario (webui_test.go) drives it; --screenshot takes only the plugin page's picture.
command -v chromium >/dev/null || apt_install chromium fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
command -v npm >/dev/null || apt_install npm
step "Navidrome v0.63.2 with its web UI"
NDP_E2E_NAVIDROME_UI=$("$here/build-navidrome-ui.sh" v0.63.2)
export NDP_E2E_NAVIDROME_UI
if [[ -n $screenshot ]]; then
  export NDP_E2E_SCREENSHOT=$here/plugin-page.png
  set -- -run Screenshot "$@"
else
  # The scenarios take ≈ 7 min in all; a later -timeout in the arguments still wins.
  set -- -timeout 15m "$@"
fi

export NDP_E2E_LOGS=${NDP_E2E_LOGS:-$(mktemp -d /tmp/ndp-e2e-logs.XXXXXX)}
step "go test (logs in $NDP_E2E_LOGS)"
cd "$here"
status=0
go test -count=1 -v -timeout 6m "$@" ./... || status=$?
step "done (exit $status)"
exit $status
