#!/usr/bin/env bash
# bench/balloon_box.sh (make bench): boots the host-box once (with QEMU) and
# runs bench/box/balloon.sh in it: inflating and deflating 1 GiB of a 2 GiB
# guest under ebb and under QEMU's virtio-balloon with -accel kvm, same
# kernel and guest image, same run.  Prints GiB/s for both, their ratio, and
# ebb's host-side cost per discarded page (MADV_DONTNEED time and calls).
set -u
BUILD=${BUILD:-build}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
BUILD=$BUILD tests/box/run --qemu -t 1200 bench/box/balloon.sh >"$out" 2>&1
status=$?
grep -v 'bench-figure' "$out" | grep -E '^(not )?ok|^# box|SKIP' | sed 's/^/  /'
fig() { sed -n "s/.*bench-figure: $1 \([0-9.e+-]*\).*/\1/p" "$out" | head -n 1; }
ei=$(fig ebb_inflate_s) ed=$(fig ebb_deflate_s) qi=$(fig qemu_inflate_s) qd=$(fig qemu_deflate_s)
calls=$(fig ebb_madvise_calls) pages=$(fig ebb_discarded_pages) ns=$(fig ebb_madvise_ns)
if [ -z "$ei" ] || [ -z "$qi" ] || [ -z "$ed" ] || [ -z "$qd" ]; then
	echo "balloon_box: figures missing (box output above; logs in $BUILD/box-logs)"
	grep 'bench-figure\|not ok' "$out" | sed 's/^/  /'
	exit 1
fi
awk -v ei="$ei" -v ed="$ed" -v qi="$qi" -v qd="$qd" -v calls="$calls" -v pages="$pages" \
    -v ns="$ns" -v er="$(fig ebb_rss_drop_mib)" -v qr="$(fig qemu_rss_drop_mib)" 'BEGIN {
	printf "balloon 1 GiB of a 2 GiB guest, 1 vCPU, in the host-box under KVM (inflate / deflate):\n"
	printf "  ebb:  inflate %.2f s = %.3f GiB/s, deflate %.2f s = %.3f GiB/s, host RSS -%d MiB\n", ei, 1/ei, ed, 1/ed, er
	printf "  qemu: inflate %.2f s = %.3f GiB/s, deflate %.2f s = %.3f GiB/s, host RSS -%d MiB\n", qi, 1/qi, qd, 1/qd, qr
	printf "  ratio ebb/qemu (throughput): inflate %.2fx, deflate %.2fx\n", qi/ei, qd/ed
	if (pages > 0)
		printf "  ebb host-side cost: %d pages discarded in %d MADV_DONTNEED calls (%.0f pages/call), %.3f us per page\n", pages, calls, pages/calls, ns/1000/pages
	printf "  (times are host-side: from the request to the driver reporting actual == target, polled every ~50 ms)\n"
}'
exit $status
