# readmostly_ebb: a guest that fills 128 MiB and then only reads it
# (tests/progs/pattern verify rounds), squeezed to max=30% with the KVM dirty
# log on.  A page swapped in and only read must keep its clean copy in the
# store, so later evictions of it are clean drops, not new stores (before the
# write-protected swap-in: 573 clean drops for 121,421 stores).  Every byte is
# verified in every round.  Scenario contract: docs/box.md.
# box-timeout: 1200
# box-cost: 335 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)
. /ebb/lib/scenario.sh
mstat() { "$EBB" stat "$1" --json >"$2" 2>&1; }
fig() {
	mstat sq s.json
	echo "# $1: resident=$(field s.json resident_pages) swapped_out=$(field s.json nr_swapped_out)" \
		"clean_dropped=$(field s.json nr_clean_dropped) swapped_in=$(field s.json nr_swapped_in)" \
		"wp_faults=$(field s.json nr_wp_faults) young=$(field s.json nr_young) errors=$(field s.json nr_errors)" \
		"lost=$(field s.json lost_pages) evict_mode=$(field s.json evict_mode)"
}
mkdir -p swap
start sq sq.log 'pattern fill 128 42 0 2' --mem 256M --reclaim on --swap-dir "$PWD/swap"
wait_for sq.log 'verify round 1 ' 400
check $? "guest filled and verified once"
fig before
"$EBB" set sq max=30% swappiness=100 >set.out 2>&1
check $? "ebb set sq max=30%: $(cat set.out)"
rounds0=$(grep -c 'verify round' sq.log)
wait_for sq.log "verify round $((rounds0 + 1)) " 600
fig "after 1 round"
wait_for sq.log "verify round $((rounds0 + 3)) " 900
check $? "three verify rounds after the squeeze"
fig "after 3 rounds"
grep 'verify round' sq.log | tail -n 4 | sed 's/^/# /'
nbad=$(grep 'verify round' sq.log | grep -vc 'bad_pages=0 ')
[ "$nbad" -eq 0 ]
check $? "every verify round found every byte intact"
mstat sq s.json
so=$(field s.json nr_swapped_out) cd=$(field s.json nr_clean_dropped)
[ "$cd" -gt "$so" ]
check $? "read-mostly squeezed guest: clean drops $cd > stores $so"
