#!/usr/bin/env bash
# reclaim_wp_mode.sh — the reclaim engine's fallback eviction path (sync
# userfaultfd write-protect + MADV_DONTNEED, for kernels without UFFDIO_MOVE
# such as the host-box's Debian 6.1) on this machine: the storage-fault test,
# the lost-page poisoning test, the synthetic guest (at 64 MiB to keep the suite short) and the pressure
# test's swappiness-0 and read-mostly parts, forced into EBB_EVICT_WP.  TAP
# from the four programs; exits 77 if none can run here.
set -u
bin=${BUILD:-build}/tests/integration
status=0 skipped=0
export EBB_ITEST_EVICT=wp
for t in itest_reclaim_faults itest_reclaim_poison itest_reclaim_synthetic itest_reclaim_pressure; do
	if [ ! -x "$bin/$t" ]; then
		echo "not ok - $t not built ($bin/$t)"
		status=1
		continue
	fi
	echo "# $t with EBB_ITEST_EVICT=wp"
	# (the pressure test without its 512 MiB max-drop part)
	EBB_ITEST_REGION_MB=64 EBB_ITEST_ONLY=swp0,readmostly "$bin/$t"
	rc=$?
	if [ "$rc" -eq 77 ]; then
		skipped=$((skipped + 1))
	elif [ "$rc" -ne 0 ]; then
		status=1
	fi
done
if [ "$skipped" -eq 4 ]; then
	echo "userfaultfd write-protect faults not available on this kernel"
	exit 77
fi
exit $status
