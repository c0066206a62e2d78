#!/usr/bin/env bash
# make deps: installs every Debian package ebb needs to build, test and run.
# Idempotent: asks dpkg what is missing, runs `apt-get update` at most once and
# only when something is missing, and installs without recommends.  Kernel
# packages for the guest images are NOT installed here: scripts/images.sh
# downloads and unpacks them into build/.
set -eu
pkgs=(
	# build
	build-essential pkg-config clang
	# libraries
	libcmocka-dev liblz4-dev libzstd-dev libjson-c-dev libsodium-dev
	# ebbd: its /metrics endpoint (HTTP) and its configuration file
	libmicrohttpd-dev libinih-dev
	# lint and fuzzing (libFuzzer and the sanitizer runtimes)
	cppcheck clang-tidy libclang-rt-14-dev
	# images, the host-box and the guests
	qemu-system-x86 busybox-static cpio kmod zstd xz-utils
	# the host-box kernel (scripts/box-kernel.sh builds it from this source)
	linux-source-6.1 flex bison libelf-dev
	# ebbd's libvirt backend; its test runs a private libvirtd (session mode)
	libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	# tests
	util-linux procps bc
	# the host-box runner: talks to the box QEMU's monitor when the box goes silent
	socat
	# ebb bench density: its PNG plots (gnuplot runs as a child process)
	gnuplot-nox
	# tests: ebb top full screen in a real terminal (tests/integration/ops_top_tmux.sh)
	tmux
	# tests: scrape ebbd's /metrics and check it (promtool), check the service units
	curl prometheus systemd
)
missing=()
for p in "${pkgs[@]}"; do
	case $p in \#*) continue ;; esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'make deps' as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
