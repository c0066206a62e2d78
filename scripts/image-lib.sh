# scripts/image-lib.sh: shell functions shared by scripts/images.sh,
# scripts/cpio-append and tests/box/run (sourced, never run).
#
# Everything here writes only under the directories it is given; nothing is
# installed on the host.  Functions return non-zero on failure and print their
# complaint on stderr prefixed with the caller's $EBB_LOG_TAG.

: "${EBB_LOG_TAG:=image}"

img_die() { echo "$EBB_LOG_TAG: $*" >&2; exit 1; }
img_say() { echo "$EBB_LOG_TAG: $*" >&2; }

# img_mkcpio DIR OUT.gz — a gzip'd newc cpio of DIR's contents, reproducible:
# sorted names, owner 0:0, every mtime set to SOURCE_DATE_EPOCH (default 0),
# no name or time in the gzip header.  Written to OUT.gz.tmp, then renamed.
img_mkcpio() {
	local dir=$1 out=$2 epoch=${SOURCE_DATE_EPOCH:-0}
	find "$dir" -mindepth 1 -exec touch -h -d "@$epoch" {} + || return 1
	(cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 --reproducible) |
		gzip -n -"${IMG_GZIP_LEVEL:-6}" >"$out.tmp" || { rm -f "$out.tmp"; return 1; }
	mv -f "$out.tmp" "$out"
}

# img_busybox DIR [CACHE_DIR] — /bin/busybox plus one symlink per applet
# (from `busybox --list-full`), made at build time so the image needs no
# install step.  With CACHE_DIR the tree is made once per busybox binary and
# copied from there (hundreds of ln calls are slow on a loaded machine).
img_busybox() {
	local dir=$1 cache=${2:-} bb a sum tree
	bb=$(command -v busybox) || { img_say "busybox not found (make deps installs busybox-static)"; return 1; }
	# A dynamically linked busybox would need its libraries in the image.
	if ldd "$bb" >/dev/null 2>&1; then
		img_say "$bb is not static (install busybox-static)"; return 1
	fi
	if [ -n "$cache" ]; then
		sum=$(sha256sum "$bb" | cut -c1-16)
		tree=$cache/busybox-$sum
		if [ ! -d "$tree" ]; then
			rm -rf "$tree.tmp"
			img_busybox "$tree.tmp" || return 1
			mv "$tree.tmp" "$tree"
		fi
		mkdir -p "$dir"
		cp -a "$tree/." "$dir/"
		return
	fi
	mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin"
	cp "$bb" "$dir/bin/busybox"
	for a in $("$bb" --list-full); do
		[ "$a" = bin/busybox ] && continue
		[ -e "$dir/$a" ] || [ -L "$dir/$a" ] && continue
		ln -s /bin/busybox "$dir/$a"
	done
}

img_resolve_kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# img_kernel_unpack PKGS_DIR — makes sure a Debian linux-image package is
# unpacked (dpkg -x, never installed) under PKGS_DIR/<package>/ with a
# modules.dep made by depmod, and prints that directory.  Cache: a directory
# with a .done stamp is reused without asking apt anything, so a warm build
# works offline.  EBB_KERNEL_PKG=linux-image-6.1.0-NN-amd64 pins the package;
# by default it is what Debian's linux-image-amd64 depends on.
img_kernel_unpack() {
	local pkgs=$1 pkg dir deb kver
	mkdir -p "$pkgs"
	pkg=${EBB_KERNEL_PKG:-}
	if [ -z "$pkg" ]; then
		# Reuse the newest cached unpack, if any.
		dir=$(ls -d "$pkgs"/linux-image-*/.done 2>/dev/null | sort -V | tail -n 1)
		if [ -n "$dir" ]; then dirname "$dir"; return 0; fi
		pkg=$(img_resolve_kernel_pkg)
		if [ -z "$pkg" ]; then
			# A fresh machine may have no package lists yet.
			img_say "apt-cache knows no linux-image-amd64; running apt-get update"
			apt-get update -q >/dev/null 2>&1 || true
			pkg=$(img_resolve_kernel_pkg)
		fi
		[ -n "$pkg" ] || { img_say "cannot resolve linux-image-amd64's kernel package (apt-cache depends)"; return 1; }
	fi
	dir=$pkgs/$pkg
	if [ -e "$dir/.done" ]; then echo "$dir"; return 0; fi
	rm -rf "$dir" "$pkgs/dl"
	mkdir -p "$pkgs/dl"
	img_say "downloading $pkg"
	if ! (cd "$pkgs/dl" && apt-get download "$pkg" >/dev/null 2>&1); then
		img_say "apt-get download $pkg failed; running apt-get update and retrying"
		apt-get update -q >/dev/null 2>&1 || true
		(cd "$pkgs/dl" && apt-get download "$pkg" >/dev/null) ||
			{ img_say "apt-get download $pkg failed"; return 1; }
	fi
	deb=$(ls "$pkgs"/dl/*.deb | head -n 1)
	dpkg -x "$deb" "$dir.tmp" || { img_say "dpkg -x $deb failed"; return 1; }
	kver=$(ls "$dir.tmp/lib/modules" | head -n 1)
	[ -n "$kver" ] && [ -f "$dir.tmp/boot/vmlinuz-$kver" ] ||
		{ img_say "$deb holds no kernel + modules"; return 1; }
	# The package ships no modules.dep (postinst runs depmod); make one here.
	depmod -b "$dir.tmp" "$kver" || { img_say "depmod failed"; return 1; }
	echo "$kver" >"$dir.tmp/.kver"
	touch "$dir.tmp/.done"
	mv "$dir.tmp" "$dir"
	rm -rf "$pkgs/dl"
	echo "$dir"
}

# img_kernel_version UNPACK_DIR — the kernel version string of an unpack.
img_kernel_version() { cat "$1/.kver"; }

# img_modules UNPACK_DIR DEST_ROOT MODULE... — copies the named modules and
# everything they depend on (transitively, from modules.dep) to
# DEST_ROOT/lib/modules/<kver>/, with a modules.dep listing exactly those, so
# busybox modprobe loads them in order.  '-' and '_' in names are equivalent.
img_modules() {
	local src=$1 dest=$2 kver mdir list
	shift 2
	kver=$(img_kernel_version "$src") || return 1
	mdir=$src/lib/modules/$kver
	list=$(awk -v want="$*" '
		function norm(s) { gsub(/-/, "_", s); return s }
		function base(p,   n) { n = split(p, a, "/"); sub(/\.ko(\.[a-z]+)?$/, "", a[n]); return norm(a[n]) }
		BEGIN { nw = split(want, w, " ") }
		{ p = $1; sub(/:$/, "", p); path[base(p)] = p; deps[p] = ""
		  for (i = 2; i <= NF; i++) deps[p] = deps[p] " " $i }
		function visit(p,   d, n, i) {
			if (p in seen) return
			seen[p] = 1
			n = split(deps[p], d, " ")
			for (i = 1; i <= n; i++) visit(d[i])
			print p
		}
		END {
			for (i = 1; i <= nw; i++) {
				m = norm(w[i])
				if (!(m in path)) { print "MISSING " w[i]; continue }
				visit(path[m])
			}
		}' "$mdir/modules.dep") || return 1
	if echo "$list" | grep -q '^MISSING'; then
		img_say "modules not in $mdir/modules.dep: $(echo "$list" | awk '/^MISSING/ { printf "%s ", $2 }')"
		return 1
	fi
	mkdir -p "$dest/lib/modules/$kver"
	local p
	for p in $list; do
		mkdir -p "$dest/lib/modules/$kver/$(dirname "$p")"
		cp "$mdir/$p" "$dest/lib/modules/$kver/$p" || return 1
	done
	# modules.dep lines for exactly the copied modules (their deps are copied too).
	echo "$list" | awk 'NR == FNR { keep[$1 ":"] = 1; next } ($1 in keep)' - "$mdir/modules.dep" \
		>"$dest/lib/modules/$kver/modules.dep"
	cp "$mdir/modules.builtin" "$dest/lib/modules/$kver/" 2>/dev/null || true
}

# img_copy_with_libs DEST_ROOT FILE... — copies each dynamically linked
# FILE's shared libraries and loader (as ldd names them) to the same paths
# under DEST_ROOT.  Static files are skipped.  The binaries themselves are the
# caller's business.
img_copy_with_libs() {
	local dest=$1 f lib
	shift
	for f in "$@"; do
		ldd "$f" >/dev/null 2>&1 || continue
		for lib in $(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
			[ -e "$dest$lib" ] && continue
			mkdir -p "$dest$(dirname "$lib")"
			cp -L "$lib" "$dest$lib" || return 1
		done
	done
}
