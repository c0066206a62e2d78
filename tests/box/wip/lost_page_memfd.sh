# lost_page_memfd: what a page the reclaim engine loses did to a VM on the
# box's kernel (Debian's 6.1, no UFFDIO_POISON) before the engine poisoned
# it with MADV_HWPOISON, and still does when MADV_HWPOISON fails (no
# CAP_SYS_ADMIN or no CONFIG_MEMORY_FAILURE): the engine's last resort maps
# an empty memfd over the page.  Same guest as lost_page_ebb.sh
# (tests/progs/mce_victim under --mem-max), the page lost with
# `ebb debug-poison NAME GPA --swap --no-hwpoison`.  Checked: the engine
# says it could not poison the page (nr_lost_sigbus 1), and the guest does
# not live on (no machine check reaches it: the victim gets no SIGBUS and
# the guest's next line never comes; in the first run the vCPU hung rather
# than KVM_RUN failing with EFAULT).  Then the VM is stopped.
# A demonstration of the failure, not a guarantee: run by hand,
#   flock /tmp/ebb-box.lock tests/box/run tests/box/wip/lost_page_memfd.sh
# Scenario contract: docs/box.md.

. /ebb/lib/scenario.sh

guest='mce_victim
echo "guest-victim-exit: $?"
echo "guest-after-mce: alive"
read -r -t 120 line
echo "guest-got: $line"'
mkdir -p swap-q
START_INPUT=fifo
export EBB_TEST_HOOKS=1
start vm-q q.log "$guest" --mem 128M --mem-max 64M --swap-dir "$PWD/swap-q"
wait_for q.log 'mce-victim: gpa=' 240
check $? "the victim runs and names its page"
gpa=$(sed -n 's/.*mce-victim: gpa=\(0x[0-9a-f]*\).*/\1/p' q.log | head -n 1)
"$EBB" debug-poison vm-q "$gpa" --swap --no-hwpoison >lose.out 2>&1
check $? "page $gpa swapped out, its next swap-in fails, MADV_HWPOISON disabled ($(cat lose.out))"
echo go >&3
wait_for q.log 'guest-after-mce: alive\|ebb-exit:' 60
alive=$?
"$EBB" stat vm-q --json >q.json 2>&1
grep -q 'cannot be poisoned' q.log.err && [ "$(field q.json nr_lost_sigbus)" = 1 ]
check $? "the engine could not poison the page: nr_lost_sigbus $(field q.json nr_lost_sigbus), nr_guest_mce $(field q.json nr_guest_mce)"
[ "$alive" != 0 ] || ! grep -q 'guest-after-mce: alive' q.log
check $? "the guest did not live on (as every lost page did before MADV_HWPOISON): $(grep -o 'ebb-exit: .*' q.log || echo 'guest frozen for 60 s') $(grep -o 'KVM_RUN failed.*' q.log.err | head -n 1)"
"$EBB" stop vm-q >/dev/null 2>&1
wait_for q.log 'ebb-exit:' 30 || { kill -9 "$(field q.json pid)" 2>/dev/null; wait_for q.log 'ebb-exit:' 10; }
echo "# then: $(grep -o 'ebb-exit: .*' q.log)"
exec 3>&-
[ "$fail" = 0 ] || dump q.log
exit 0
