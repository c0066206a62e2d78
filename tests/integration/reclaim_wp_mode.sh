#!/usr/bin/env bash
# reclaim_wp_mode.sh — the reclaim engine's fallback eviction path (sync
# userfaultfd write-protect + MADV_DONTNEED, for kernels without UFFDIO_MOVE
# such as the host-box's Debian 6.1) on this machine: the storage-fault test
# and the synthetic guest (at 64 MiB to keep the suite short), forced into
# EBB_EVICT_WP.  TAP from both programs; exits 77 if neither can run here.
set -u
bin=${BUILD:-build}/tests/integration
status=0 skipped=0
export EBB_ITEST_EVICT=wp
for t in itest_reclaim_faults itest_reclaim_synthetic; do
	if [ ! -x "$bin/$t" ]; then
		echo "not ok - $t not built ($bin/$t)"
		status=1
		continue
	fi
	echo "# $t with EBB_ITEST_EVICT=wp"
	EBB_ITEST_REGION_MB=64 "$bin/$t"
	rc=$?
	if [ "$rc" -eq 77 ]; then
		skipped=$((skipped + 1))
	elif [ "$rc" -ne 0 ]; then
		status=1
	fi
done
if [ "$skipped" -eq 2 ]; then
	echo "userfaultfd write-protect faults not available on this kernel"
	exit 77
fi
exit $status
