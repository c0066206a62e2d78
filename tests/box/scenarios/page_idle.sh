# page_idle: the engine's idle page tracking source (host-reclaim/refsrc.c)
# where the kernel has /sys/kernel/mm/page_idle/bitmap — the ebb box kernel;
# this machine's and Debian's kernels lack it, so these tests skip outside
# the box.  Runs tests/integration/itest_page_idle (exact accessed sets,
# slices, batching, cost next to a per-page reader) and checks that the idle
# line of itest_reclaim_api runs instead of skipping (its outcome is noted:
# under TCG a host-process re-read right after marking can go unseen, see
# itest_page_idle's TLB diagnostic).  On the Debian box
# kernel (BOX_KERNEL=debian) it skips.  Scenario contract: docs/box.md.
# box-cost: 10 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

if [ ! -e /sys/kernel/mm/page_idle/bitmap ]; then
	echo "no /sys/kernel/mm/page_idle/bitmap on box kernel $(uname -r) (BOX_KERNEL=debian?)"
	exit 77
fi
/ebb/tests/itest_page_idle
status=$?

/ebb/tests/itest_reclaim_api >api.log 2>&1
api=$?
# Only its idle page tracking line is this scenario's business: the rest of
# that test expects a 6.7+ kernel (PAGEMAP_SCAN dirty source) and is noted.
line=$(grep 'idle page tracking' api.log)
case $line in
ok*SKIP*) echo "not ok - itest_reclaim_api skipped its idle page tracking test: $line" ;;
"") echo "not ok - itest_reclaim_api (exit $api) printed no idle page tracking line"; sed 's/^/# /' api.log | tail -n 20 ;;
*) echo "ok - itest_reclaim_api's idle page tracking test ran (not skipped)"
   echo "# itest_reclaim_api (exit $api) on this kernel: $line" ;;
esac
grep '^not ok' api.log | sed 's/^/# itest_reclaim_api: /'
exit "$status"
