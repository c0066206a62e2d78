#!/usr/bin/env bash
# scripts/box-kernel.sh [OUT_DIR] — the host-box kernel (docs/box.md).
#
# Builds a bzImage from Debian's linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz,
# `make deps` installs it) with a small configuration: `make allnoconfig` with
# tests/box/kernel.config as KCONFIG_ALLCONFIG, then olddefconfig; every line of
# the fragment is then checked in the resulting .config (a symbol Kconfig
# silently dropped is an error, not a surprise at run time).  No modules.
#
# Cache: $EBB_KCACHE (default /var/cache/ebb, else ~/.cache/ebb when that is
# not writable)/box-kernel/<key>/{bzImage,config,version}, where <key> hashes
# the source package's version, the compiler's version, the fragment and this
# script.  A warm machine never rebuilds.  The unpacked source and the object
# tree stay under …/box-kernel/work/ so that a changed fragment rebuilds
# incrementally; `rm -rf` of the cache directory is always safe.  One build at a
# time per cache (flock): concurrent `make images` wait for each other.
#
# Prints the directory holding bzImage on stdout, its narrative on stderr.
# Env: EBB_KJOBS (make -j, default 2), EBB_KNICE (default 10).
set -eu
cd "$(dirname "$0")/.."
EBB_LOG_TAG=box-kernel
. scripts/image-lib.sh

frag=tests/box/kernel.config
tarball=/usr/src/linux-source-6.1.tar.xz
srcpkg=linux-source-6.1
jobs=${EBB_KJOBS:-2}
nice_n=${EBB_KNICE:-10}

[ -f "$frag" ] || img_die "$frag missing"
cache=${EBB_KCACHE:-/var/cache/ebb}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${HOME:-/tmp}/.cache/ebb
	mkdir -p "$cache" || img_die "no writable cache directory"
fi
cache=$cache/box-kernel
mkdir -p "$cache"

srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null || true)
[ -n "$srcver" ] && [ -f "$tarball" ] ||
	img_die "$srcpkg is not installed (make deps)"
ccver=$(gcc -dumpfullversion 2>/dev/null || echo unknown)
key=$( { echo "$srcpkg $srcver"; echo "gcc $ccver"; cat "$frag" "$0"; } | sha256sum | cut -c1-16)
out=$cache/$key

if [ -f "$out/.done" ]; then
	img_say "cached: $out (key $key)"
	echo "$out"
	exit 0
fi

exec 9>"$cache/lock"
flock 9
if [ -f "$out/.done" ]; then # built by someone else while we waited
	echo "$out"
	exit 0
fi

t0=$(date +%s.%N)
work=$cache/work
src=$work/src-$srcver
obj=$work/obj
if [ ! -f "$src/.unpacked" ]; then
	img_say "unpacking $tarball ($srcpkg $srcver)"
	rm -rf "$work"
	mkdir -p "$work/tmp"
	tar -C "$work/tmp" -xf "$tarball"
	mv "$work/tmp/linux-source-6.1" "$src"
	rmdir "$work/tmp"
	touch "$src/.unpacked"
fi
mkdir -p "$obj"
# Without ebb's make's flags: run from a recipe (make images), the kernel's
# make found a jobserver it could not reach and fell back to -j1.
kmake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL nice -n "$nice_n" make -s -C "$src" O="$obj" ARCH=x86_64 "$@"; }

img_say "configuring (allnoconfig + $frag)"
rm -f "$obj/.config"
kmake KCONFIG_ALLCONFIG="$PWD/$frag" allnoconfig >/dev/null
kmake olddefconfig >/dev/null
bad=$(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag" | while IFS= read -r line; do
	grep -qxF "$line" "$obj/.config" || echo "$line"
done)
[ -z "$bad" ] || img_die "Kconfig did not keep: $(echo $bad)"

img_say "building bzImage (make -j$jobs, nice $nice_n; a cold build takes minutes)"
kmake -j"$jobs" bzImage >"$work/build.log" 2>&1 ||
	{ tail -n 30 "$work/build.log" >&2; img_die "kernel build failed (log: $work/build.log)"; }

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$obj/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$obj/.config" "$out.tmp/config"
kmake -s kernelrelease >"$out.tmp/version"
echo "$srcpkg $srcver" >"$out.tmp/source"
touch "$out.tmp/.done"
rm -rf "$out"
mv "$out.tmp" "$out"
printf '%s: built %s in %.0fs\n' "$EBB_LOG_TAG" "$(cat "$out/version")" \
	"$(awk "BEGIN{print $(date +%s.%N) - $t0}")" >&2
echo "$out"
