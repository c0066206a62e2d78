#!/usr/bin/env bash
# scripts/images.sh (make images): builds the boot images ebb's tests use.
#
#   $BUILD/images/pkgs/<linux-image-…>/  Debian's kernel package, unpacked with
#                                        dpkg -x (cached; never installed)
#   $BUILD/images/guest/{vmlinuz,initrd.img}  the guest image: busybox, the
#       virtio modules, guest-agent/image/init, $BUILD/bin/ebb-agent at
#       /bin/ebb-agent, $BUILD/bin/ebb-work at /bin/ebb-work (docs/density.md),
#       $BUILD/progs/* at /usr/bin/ (contract: docs/box.md)
#   $BUILD/images/box/{vmlinuz,initrd.img}    the host-box base image: busybox,
#       tests/box/init, the box kernel; with BOX_QEMU=1 also qemu-system-x86_64,
#       its libraries and firmware.  tests/box/run appends ebb's current
#       binaries, the guest image and the scenarios at boot time.
#       BOX_KERNEL=ebb: the kernel scripts/box-kernel.sh builds from
#       linux-source-6.1 with tests/box/kernel.config (KVM built in, idle page
#       tracking, DAMON, ...; cached under /var/cache/ebb); BOX_KERNEL=debian (default):
#       Debian's kernel package with the kvm modules in the initrd.
#
# The initrds are reproducible (sorted names, fixed mtimes, root owner) and only
# replaced when their content changed.  Env: BUILD (default build),
# EBB_KERNEL_PKG (pin the kernel package), BOX_QEMU=0|1, BOX_KERNEL=ebb|debian.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BOX_QEMU=${BOX_QEMU:-0}
BOX_KERNEL=${BOX_KERNEL:-debian}
case $BOX_KERNEL in ebb | debian) ;; *) echo "images: BOX_KERNEL must be ebb or debian" >&2; exit 2 ;; esac
EBB_LOG_TAG=images
. scripts/image-lib.sh

t0=$(date +%s.%N)
img=$BUILD/images
mkdir -p "$img/guest" "$img/box"

kdir=$(img_kernel_unpack "$img/pkgs") || img_die "no kernel package"
kver=$(img_kernel_version "$kdir")
if [ "$BOX_KERNEL" = ebb ]; then
	bkdir=$(scripts/box-kernel.sh) || img_die "the box kernel build failed (BOX_KERNEL=debian uses Debian's)"
	bkver=$(cat "$bkdir/version")
else
	bkver=$kver
fi

# install_if_changed NEW DEST: keeps DEST (and its mtime) when identical.
install_if_changed() {
	if cmp -s "$1" "$2"; then
		rm -f "$1"
		echo "images: $2 unchanged"
	else
		mv -f "$1" "$2"
		echo "images: $2 ($(du -h "$2" | cut -f1))"
	fi
}

# Skeleton shared by both images: busybox, mount points, /dev/console.
skeleton() {
	local root=$1
	rm -rf "$root"
	mkdir -p "$root"/{proc,sys,dev,tmp,root,etc,mnt,run,var}
	img_busybox "$root" "$img/cache" || return 1
	# /dev/console lets the kernel give init its console before devtmpfs is
	# mounted; creating a device node needs root, and init copes without it.
	if [ "$(id -u)" -eq 0 ]; then
		mknod -m 600 "$root/dev/console" c 5 1
	fi
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# --- guest image -------------------------------------------------------------
groot=$img/guest.root
skeleton "$groot"
img_modules "$kdir" "$groot" virtio virtio_ring virtio_pci virtio_pci_modern_dev \
	virtio_pci_legacy_dev virtio_console virtio_balloon pvpanic pvpanic_mmio
install -m 0755 guest-agent/image/init "$groot/init"
if [ -x "$BUILD/bin/ebb-agent" ]; then
	install -m 0755 "$BUILD/bin/ebb-agent" "$groot/bin/ebb-agent"
	img_copy_with_libs "$groot" "$groot/bin/ebb-agent"
fi
# the workloads of `ebb bench density` (docs/density.md)
if [ -x "$BUILD/bin/ebb-work" ]; then
	install -m 0755 "$BUILD/bin/ebb-work" "$groot/bin/ebb-work"
	img_copy_with_libs "$groot" "$groot/bin/ebb-work"
fi
for p in "$BUILD"/progs/*; do
	[ -f "$p" ] && [ -x "$p" ] || continue
	install -m 0755 "$p" "$groot/usr/bin/$(basename "$p")"
	img_copy_with_libs "$groot" "$p"
done
img_mkcpio "$groot" "$img/guest/initrd.img.new"
install_if_changed "$img/guest/initrd.img.new" "$img/guest/initrd.img"
cp "$kdir/boot/vmlinuz-$kver" "$img/guest/vmlinuz.new"
install_if_changed "$img/guest/vmlinuz.new" "$img/guest/vmlinuz"

# --- host-box base image ---------------------------------------------------------
broot=$img/box.root
skeleton "$broot"
# The ebb box kernel has KVM (and zram) built in and no modules; zram:
# swap for scenarios that need anonymous memory reclaimed (cgroup_reclaim.sh).
[ "$BOX_KERNEL" = debian ] && img_modules "$kdir" "$broot" kvm kvm_amd irqbypass ccp zram
install -m 0755 tests/box/init "$broot/init"
if [ "$BOX_QEMU" = 1 ]; then
	qemu=$(command -v qemu-system-x86_64) || img_die "BOX_QEMU=1 but no qemu-system-x86_64"
	mkdir -p "$broot/usr/bin" "$broot/usr/share/qemu"
	install -m 0755 "$qemu" "$broot/usr/bin/qemu-system-x86_64"
	img_copy_with_libs "$broot" "$qemu"
	for fw in bios-256k.bin linuxboot_dma.bin kvmvapic.bin; do
		f=$(ls /usr/share/qemu/$fw /usr/share/seabios/$fw 2>/dev/null | head -n 1)
		[ -n "$f" ] || img_die "qemu firmware $fw not found"
		cp -L "$f" "$broot/usr/share/qemu/$fw"
	done
	echo qemu >"$broot/etc/ebb-box-features"
fi
img_mkcpio "$broot" "$img/box/initrd.img.new"
install_if_changed "$img/box/initrd.img.new" "$img/box/initrd.img"
if [ "$BOX_KERNEL" = ebb ]; then
	cp "$bkdir/bzImage" "$img/box/vmlinuz.new"
else
	cp "$kdir/boot/vmlinuz-$kver" "$img/box/vmlinuz.new"
fi
install_if_changed "$img/box/vmlinuz.new" "$img/box/vmlinuz"
echo "$kver" >"$img/kernel-version"
echo "$BOX_KERNEL $bkver" >"$img/box/kernel"

printf 'images: guest kernel %s, box kernel %s (%s), done in %.1fs\n' "$kver" "$bkver" "$BOX_KERNEL" "$(awk "BEGIN{print $(date +%s.%N) - $t0}")"
