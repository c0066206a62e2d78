# mce_ebb: one page of guest RAM lost on the host kills one guest process,
# not the VM.  The guest runs tests/progs/mce_victim (16 patterned pages; it
# prints the guest-physical address of page 7 and waits); the host poisons
# that page with the test-only control command `ebb debug-poison` (the VM
# runs with EBB_TEST_HOOKS=1; MADV_HWPOISON, as the host kernel does for a
# hardware memory error and the reclaim engine for a swap slot that failed
# its checksum); then the victim reads it.  KVM raises SIGBUS (BUS_MCEERR_AR)
# on the vCPU thread, ebb injects a machine check (KVM_X86_SET_MCE), and the
# guest kernel sends SIGBUS to the victim only.  Checked: the victim got
# SIGBUS at that page, its other 15 pages were intact, the guest kernel
# logged the memory failure, the VM kept running and answered ebb stat with
# nr_guest_mce 1, and it powered off normally afterwards (exit 0).
# --reclaim off: the engine would otherwise scan the poisoned page itself.
# Scenario contract: docs/box.md.
# box-cost: 40 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

. /ebb/lib/scenario.sh

START_INPUT=fifo
export EBB_TEST_HOOKS=1
start vm-m m.log 'mce_victim
echo "guest-victim-exit: $?"
dmesg | grep -iE "mce|memory failure|hardware error" | head -n 8 | sed "s/^/guest-dmesg: /"
echo "guest-after-mce: alive"
read -r -t 120 line
echo "guest-got: $line"' --mem 256M --reclaim off
wait_for m.log 'mce-victim: gpa=' 240
check $? "the victim runs and names its page"
gpa=$(sed -n 's/.*mce-victim: gpa=\(0x[0-9a-f]*\).*/\1/p' m.log | head -n 1)
"$EBB" stat vm-m --json >before.json 2>&1
banks=$(field before.json mce_banks)
[ -n "$banks" ] && [ "$banks" -ge 2 ]
check $? "KVM gives the guest machine check banks (${banks:-?})"
"$EBB" debug-poison vm-m "$gpa" >poison.out 2>&1
check $? "the host poisoned guest page $gpa ($(cat poison.out))"
echo go >&3
wait_for m.log 'guest-after-mce: alive' 120
check $? "the guest lived on after the machine check"
grep -q 'mce-victim: other pages intact' m.log
check $? "the victim's other 15 pages kept their patterns"
grep -q 'mce-victim: SIGBUS code=4 at the lost page' m.log && grep -q 'guest-victim-exit: 42' m.log
check $? "the victim got SIGBUS (BUS_MCEERR_AR) at the lost page: $(grep -o 'mce-victim: SIGBUS.*' m.log)"
grep -qiE 'guest-dmesg: .*(memory failure|hardware error)' m.log
check $? "the guest kernel logged the memory failure"
grep 'guest-dmesg:' m.log | sed 's/^[0-9.]* /# /'
"$EBB" stat vm-m --json >after.json 2>&1
[ "$(field after.json nr_guest_mce)" = 1 ] && grep -q '"state": *"running"' after.json
check $? "ebb stat: the VM is running, nr_guest_mce = $(field after.json nr_guest_mce)"
"$EBB" stat vm-m | grep 'guest MCE' | sed 's/^/# /'
echo bye >&3
wait_for m.log 'ebb-exit:' 120
grep -q 'ebb-exit: 0' m.log && grep -q 'guest-got: bye' m.log
check $? "the VM then powered off normally, ebb exited 0"
grep -q 'machine check (action required) injected' m.log.err
check $? "ebb logged the injection ($(grep -o 'guest RAM at .*' m.log.err | head -n 1))"
exec 3>&-
[ "$fail" = 0 ] || dump m.log
exit 0
