# ksm_ebb: two ebb VMs from the same image with --ksm on share pages.
# ksmd is switched on in the box (run=1, pages_to_scan=4000,
# sleep_millisecs=10; the old settings are restored at the end).  Both
# guests write the same 64 MiB of seeded patterns (tests/progs/pattern, same
# seed), so their RAM holds many identical pages; each VM's `ebb stat` must
# report KSM-shared pages from its own process (/proc/self/ksm_merging_pages
# or ksm_stat: docs/memory.md), and the guests' data must still verify.
# Scenario contract: docs/box.md.
# box-timeout: 1200
# box-cost: 400 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

. /ebb/lib/scenario.sh   # start, wait_for, check, dump, field, now (docs/box.md)

K=/sys/kernel/mm/ksm
if [ ! -w $K/run ]; then
	echo "this box kernel has no KSM ($K/run)"
	exit 77
fi
old_run=$(cat $K/run) old_scan=$(cat $K/pages_to_scan) old_sleep=$(cat $K/sleep_millisecs)
restore() { echo "$old_scan" >$K/pages_to_scan; echo "$old_sleep" >$K/sleep_millisecs; echo "$old_run" >$K/run; }
echo 4000 >$K/pages_to_scan
echo 10 >$K/sleep_millisecs
echo 1 >$K/run

script='pattern fill 64 9 0 5'
start ka ka.log "$script" --mem 192M --ksm on --swap-dir "$PWD"
start kb kb.log "$script" --mem 192M --ksm on --swap-dir "$PWD"
wait_for ka.log 'verify round 1 ' 600 && wait_for kb.log 'verify round 1 ' 300
r=$?
check $r "two VMs with --ksm on booted and wrote the same patterns"
[ $r -eq 0 ] || { dump ka.log; dump kb.log; restore; exit 1; }
end=$(awk "BEGIN{print int($(now) + 240)}")
while :; do
	"$EBB" stat ka --json >a.json 2>&1
	"$EBB" stat kb --json >b.json 2>&1
	a=$(field a.json ksm_merging_pages) b=$(field b.json ksm_merging_pages)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 1000 ] && [ "$b" -gt 1000 ] && break
	[ "$(cut -d. -f1 /proc/uptime)" -gt "$end" ] && break
	sleep 5
done
echo "# ksm: ka merging=$a rmap_items=$(field a.json ksm_rmap_items); kb merging=$b rmap_items=$(field b.json ksm_rmap_items);" \
	"global pages_shared=$(cat $K/pages_shared) pages_sharing=$(cat $K/pages_sharing) full_scans=$(cat $K/full_scans)"
ls /proc/self/ksm_stat /proc/self/ksm_merging_pages 2>&1 | sed 's/^/# proc| /'
if [ -z "$a" ] || [ -z "$b" ]; then
	echo "ok - per-VM KSM sharing # SKIP this kernel has neither /proc/PID/ksm_merging_pages nor ksm_merging_pages in ksm_stat"
else
	[ "$a" -gt 1000 ] && [ "$b" -gt 1000 ]
	check $? "each VM reports KSM-shared pages of its own ($a and $b pages)"
fi
"$EBB" stat ka | grep -A2 '^memory' | sed 's/^/# /'
n0=$(grep -c 'verify round' ka.log)
wait_for ka.log "verify round $((n0 + 1)) " 120
! grep 'verify round' ka.log kb.log | grep -qv 'bad_pages=0 '
check $? "merged guest RAM still verifies in both guests"
"$EBB" stop ka >/dev/null 2>&1
"$EBB" stop kb >/dev/null 2>&1
restore
[ "$(cat $K/run)" = "$old_run" ]
check $? "ksm settings restored (run=$old_run)"
exit 0
