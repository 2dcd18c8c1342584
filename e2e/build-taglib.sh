#!/usr/bin/env bash
# Builds TagLib 2.0.2, a static library, into the e2e cache and prints its prefix (for
# PKG_CONFIG_PATH=<prefix>/lib/pkgconfig). Navidrome v0.61.2 links TagLib >= 2.0 through cgo;
# Debian bookworm ships 1.13. Usage: build-taglib.sh   (a second run only prints the prefix)
#
# The source is Debian trixie's `taglib_2.0.2.orig.tar.gz` (upstream's release tarball),
# fetched by apt from the Debian mirror this machine's apt uses, through a private apt
# configuration in the build folder: the machine's own sources and lists stay as they are.
# The mirror serves the tarball but not always the .dsc, so apt-get source may fail after
# downloading it; the tarball is checked against the SHA-256 below in any case. It is built
# with the system's cmake, g++, zlib and utfcpp (installed with apt when missing; the
# tarball's 3rdparty/utfcpp is an empty git submodule) and nothing is installed system-wide.
set -euo pipefail
version=2.0.2
sha256=0de288d7fe34ba133199fd8512f19cc1100196826eafcb67a33b224ec3a59737
cache=${NDP_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ndp-e2e}
prefix=$cache/taglib-$version
if [[ -f $prefix/lib/pkgconfig/taglib.pc ]]; then echo "$prefix"; exit 0; fi

missing=()
for p in cmake g++ make pkg-config zlib1g-dev libutfcpp-dev; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "build-taglib: installing ${missing[*]} (Debian)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "build-taglib: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2; exit 1
  fi
fi

work=$cache/taglib-$version.build
rm -rf "$work"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
# The main Debian archive of this machine's apt sources (deb.debian.org if none is found).
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 'Origin: Debian' 'Label: Debian' 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian/}
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/apt/sources.list"
apt=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
tarball=$work/src/taglib_$version.orig.tar.gz
echo "build-taglib: taglib_$version.orig.tar.gz from ${mirror}pool (trixie)" >&2
apt-get "${apt[@]}" update > "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
(cd "$work/src" && apt-get "${apt[@]}" source --download-only taglib >> "$work/apt.log" 2>&1) || true
if [[ ! -f $tarball ]]; then
  # apt-get source gave up before the tarball: take its pool path from the signed index.
  dir=$(apt-cache "${apt[@]}" showsrc taglib 2>/dev/null | sed -n 's/^Directory: //p' | head -n1)
  [[ -n $dir ]] || { cat "$work/apt.log" >&2; echo "build-taglib: no taglib source in trixie" >&2; exit 1; }
  /usr/lib/apt/apt-helper download-file "$mirror$dir/taglib_$version.orig.tar.gz" "$tarball" "SHA256:$sha256" >> "$work/apt.log" 2>&1 ||
    { cat "$work/apt.log" >&2; echo "build-taglib: could not download taglib_$version.orig.tar.gz (trixie's taglib may have moved on from $version)" >&2; exit 1; }
fi
echo "$sha256  $tarball" | sha256sum -c --quiet - >&2

tar -xzf "$tarball" -C "$work"
# cmake's output goes to a log, shown when a step fails.
log=$work/build.log
quiet() { "$@" >> "$log" 2>&1 || { tail -n 40 "$log" >&2; echo "build-taglib: failed: $*" >&2; exit 1; }; }
echo "build-taglib: building TagLib $version (static) into $prefix" >&2
quiet cmake -S "$work/taglib-$version" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DWITH_ZLIB=ON \
  -DBUILD_BINDINGS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_TESTING=OFF
quiet cmake --build "$work/build" -j "$(nproc)"
# Installed into a staging folder and moved in place: the cache holds a whole build or none.
quiet env DESTDIR="$work/stage" cmake --install "$work/build"
rm -rf "$prefix"
mv "$work/stage$prefix" "$prefix"
rm -rf "$work"
echo "$prefix"
