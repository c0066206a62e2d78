# kvm_idle: the accessed bits of a KVM guest's nested page tables reach the
# box through idle page tracking (tests/progs/kvm_idle.c): a guest that only
# reads a page set, and the host sees exactly those pages accessed.  Needs
# the ebb box kernel (CONFIG_IDLE_PAGE_TRACKING); on the Debian box kernel it
# skips.  Also checks that the test can fail: told to expect a page the guest
# never reads, it must report "not ok".  Scenario contract: docs/box.md.
# box-cost: 20 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

"$EBB_PROGS/kvm_idle"
status=$?
[ "$status" -eq 77 ] && exit 77

"$EBB_PROGS/kvm_idle" --expect-wrong >wrong.log 2>&1
wrong=$?
if [ "$wrong" -eq 1 ] && grep -q '^not ok .*round 1: pages seen accessed' wrong.log; then
	echo "ok - kvm_idle reports not ok when the expected accessed page set is wrong"
else
	echo "not ok - kvm_idle --expect-wrong exited $wrong without the expected failure"
	sed 's/^/# /' wrong.log
fi
exit "$status"
