# kvm_smoke: /dev/kvm in the host-box works the way ebb needs — VM, vCPU,
# memory slots, real-mode guest code, port I/O exits, HLT and an exact
# KVM_GET_DIRTY_LOG (tests/progs/kvm_smoke.c).  Also checks that the test can
# fail: told to expect a page the guest never writes, it must report "not ok".
# Scenario contract: docs/box.md.
# box-cost: 10 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

"$EBB_PROGS/kvm_smoke"
status=$?

"$EBB_PROGS/kvm_smoke" --expect-wrong >wrong.log 2>&1
wrong=$?
if [ "$wrong" -eq 1 ] && grep -q '^not ok .*dirty log reports pages' wrong.log; then
	echo "ok - kvm_smoke reports not ok when the expected dirty page set is wrong"
else
	echo "not ok - kvm_smoke --expect-wrong exited $wrong without the expected failure"
	sed 's/^/# /' wrong.log
fi
exit "$status"
