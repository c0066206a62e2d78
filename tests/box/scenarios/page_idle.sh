# page_idle: the engine's idle page tracking source (host-reclaim/refsrc.c)
# where the kernel has /sys/kernel/mm/page_idle/bitmap — the ebb box kernel;
# this machine's and Debian's kernels lack it, so these tests skip outside
# the box.  Runs tests/integration/itest_page_idle (exact accessed sets,
# slices, batching, cost next to a per-page reader) and checks that the idle
# line of itest_reclaim_api runs instead of skipping.  On the Debian box
# kernel (BOX_KERNEL=debian) it skips.  Scenario contract: docs/box.md.

if [ ! -e /sys/kernel/mm/page_idle/bitmap ]; then
	echo "no /sys/kernel/mm/page_idle/bitmap on box kernel $(uname -r) (BOX_KERNEL=debian?)"
	exit 77
fi
/ebb/tests/itest_page_idle
status=$?

/ebb/tests/itest_reclaim_api >api.log 2>&1
api=$?
line=$(grep 'idle page tracking' api.log)
case $line in
ok*SKIP*) echo "not ok - itest_reclaim_api skipped its idle page tracking test: $line" ;;
ok*) echo "ok - itest_reclaim_api's idle page tracking test ran: ${line#ok* - }" ;;
*) echo "not ok - itest_reclaim_api (exit $api): ${line:-no idle page tracking line}"; sed 's/^/# /' api.log | tail -n 20 ;;
esac
[ "$api" -eq 0 ] || echo "not ok - itest_reclaim_api exited $api"
exit "$status"
