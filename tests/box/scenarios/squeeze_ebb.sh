# squeeze_ebb: guest RAM of an ebb VM is a host-reclaim region; squeeze a
# guest to 30% resident and lose nothing (docs/memory.md).  One 256 MiB,
# 1 vCPU guest under KVM in the host-box:
#   - tests/progs/pattern writes 150 MiB of per-page seeded patterns (noise,
#     compressible, zero and duplicate pages), then verifies every byte every
#     few seconds, forever;
#   - the host inflates the balloon (90%: ballooned pages tracked as such)
#     and sets max=30% (`ebb set`): the engine swaps the rest out;
#   - at least two complete verify rounds after the squeeze, all rounds must
#     report bad_pages=0; resident stays <= max; the accounting adds up
#     (resident + swapped + zero + ballooned + never + lost = the VM's size);
#     swap-out, compressed and file tiers and the dirty log were all used;
#   - bad `ebb set` requests are refused, the VM keeps running;
#   - SIGKILL of the VMM with pages swapped out leaves no swap file and no
#     process; the name can be used again at once (stale socket).
# Scenario contract: docs/box.md.  Figures go to '#' lines.
# box-timeout: 1200
# box-cost: 280 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

. /ebb/lib/scenario.sh   # start, wait_for, check, dump, field, now (docs/box.md)
mstat() { "$EBB" stat "$1" --json >"$2" 2>&1; }
show() { # NAME: one '#' line of memory figures
	mstat "$1" s.json
	echo "# $1 @$(now): resident=$(field s.json resident_pages) swapped=$(field s.json swapped_pages)" \
		"compressed=$(field s.json compressed_pages) file=$(field s.json file_pages)" \
		"zero=$(field s.json zero_pages) ballooned=$(field s.json ballooned_pages)" \
		"never=$(field s.json never_pages) max=$(field s.json max_pages)" \
		"faults=$(field s.json nr_faults) major=$(field s.json nr_major_faults)" \
		"young=$(field s.json nr_young) errors=$(field s.json nr_errors)"
}

mkdir -p swap
script='pattern fill 128 42 0 2'
start sq sq.log "$script" --mem 256M --reclaim on --swap-dir "$PWD/swap"
wait_for sq.log 'pattern: filled' 400
r=$?
check $r "guest booted under the reclaim engine and wrote 128 MiB of patterns ($(grep -m1 'pattern: filled' sq.log | cut -d' ' -f2-))"
if [ $r -ne 0 ]; then
	dump sq.log
	exit 1
fi
# Diagnostics in the background: the guest's last lines every 30 s.
( while sleep 30; do tail -n 1 sq.log | sed 's/^/# guest| /'; done ) &
diag=$!
wait_for sq.log 'verify round 1 ' 120
check $? "first verify round before any squeeze: $(grep -m1 'verify round 1 ' sq.log | cut -d' ' -f3-)"
show sq
pid=$(field s.json pid)
total=$(field s.json total_pages)

# Client input is checked.
"$EBB" set sq max=101% >/dev/null 2>&1
r1=$?
"$EBB" set sq high=200M max=100M >/dev/null 2>&1
r2=$?
"$EBB" set sq swappiness=201 >/dev/null 2>&1
r3=$?
"$EBB" set sq >/dev/null 2>&1
r4=$?
[ $r1 -ne 0 ] && [ $r2 -ne 0 ] && [ $r3 -ne 0 ] && [ $r4 -ne 0 ]
check $? "ebb set refuses max=101%, high above max, swappiness=201, nothing to set ($r1 $r2 $r3 $r4)"

# Squeeze: the balloon takes 5%, then max 30%.
t0=$(now)
"$EBB" balloon sq 95% >/dev/null 2>&1
end=$(awk "BEGIN{print int($t0 + 120)}")
while :; do
	"$EBB" balloon sq --json >b.json 2>&1
	[ "$(field b.json target_pages)" = "$(field b.json actual_pages)" ] && break
	[ "$(cut -d. -f1 /proc/uptime)" -gt "$end" ] && break
	sleep 1
done
echo "# balloon after $(awk "BEGIN{print $(now)-$t0}") s: target $(field b.json target_pages) actual $(field b.json actual_pages)"
show sq
bal=$(field s.json ballooned_pages)
[ -n "$bal" ] && [ "$bal" -gt 0 ]
check $? "balloon inflated to 95%: the engine tracks ballooned pages ($bal; balloon actual $(field b.json actual_pages))"
"$EBB" set sq max=30% swappiness=100 >set.out 2>&1
check $? "ebb set sq max=30% swappiness=100: $(cat set.out)"
maxp=$(field s.json total_pages)
maxp=$((maxp * 30 / 100))
end=$(awk "BEGIN{print int($(now) + 300)}")
while :; do
	mstat sq s.json
	res=$(field s.json resident_pages)
	[ -n "$res" ] && [ "$res" -le "$maxp" ] && break
	[ "$(cut -d. -f1 /proc/uptime)" -gt "$end" ] && break
	sleep 1
done
t1=$(now)
show sq
[ -n "$res" ] && [ "$res" -le "$maxp" ]
check $? "squeezed to <= 30% resident ($res of $total pages, max $maxp) in $(awk "BEGIN{print $t1-$t0}") s"
rounds0=$(grep -c 'verify round' sq.log)
want=$((rounds0 + 2))
wait_for sq.log "verify round $want " 600
check $? "two full verify rounds after the squeeze completed (rounds $rounds0 -> $want)"
maxres=0
for k in 1 2 3 4 5; do
	mstat sq s.json
	res=$(field s.json resident_pages)
	[ "$res" -gt "$maxres" ] && maxres=$res
	sleep 1
done
show sq
grep 'verify round' sq.log | tail -n 4 | sed 's/^/# /'
nbad=$(grep 'verify round' sq.log | grep -vc 'bad_pages=0 ')
[ "$nbad" -eq 0 ] && ! grep -q 'pattern: BAD' sq.log
check $? "every verify round found every byte intact ($(grep -c 'verify round' sq.log) rounds, $nbad with differences)"
[ "$maxres" -le "$((maxp + maxp / 50))" ]
check $? "resident stays at max while the guest reads all its data (peak $maxres, max $maxp)"
acc=$(field s.json accounted_pages)
[ "$acc" = "$total" ]
check $? "resident+swapped+zero+ballooned+never+lost = VM size ($acc = $total pages)"
so=$(field s.json nr_swapped_out) cp=$(field s.json compressed_pages) fp=$(field s.json file_pages)
zo=$(field s.json zero_pages) si=$(field s.json nr_swapped_in) yg=$(field s.json nr_young)
[ "$so" -gt 0 ] && [ "$cp" -gt 0 ] && [ "$fp" -gt 0 ] && [ "$si" -gt 0 ] && [ "$zo" -gt 0 ]
check $? "swap out/in used both tiers and the zero path (out $so, in $si, compressed $cp, file $fp, zero $zo)"
[ "$yg" -gt 0 ]
check $? "the KVM dirty log feeds the LRU (young pages $yg, passes $(field s.json nr_aging_passes))"
[ "$(field s.json nr_errors)" = 0 ] && [ "$(field s.json lost_pages)" = 0 ]
check $? "no engine errors, no lost pages"
"$EBB" stat sq >stat.txt 2>&1
grep '^memory\|^  ' stat.txt | sed 's/^/# /'
"$EBB" ls | grep -q '^sq '
check $? "the VM keeps running (ebb ls)"

# SIGKILL with pages out: nothing left behind.
ls -la swap /proc/$pid/fd 2>/dev/null | grep -i 'swap' | sed 's/^/# fd| /'
kill -9 "$pid"
i=0
while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
[ ! -d "/proc/$pid" ] && [ -z "$(ls -A swap)" ]
check $? "SIGKILL with $(field s.json swapped_pages) pages swapped out: process gone, swap dir empty"
! "$EBB" ls 2>/dev/null | grep -q '^sq '
check $? "ebb ls does not list the killed VM"
ls -A rt | sed 's/^/# rundir| /'
script='pattern fill 8 1 1 0'
start sq sq2.log "$script" --mem 128M --reclaim on --swap-dir "$PWD/swap"
wait_for sq2.log 'pattern: done bad_pages=0' 300
check $? "the name is usable again at once (stale socket replaced), a new VM runs"
wait_for sq2.log 'ebb-exit' 60
kill $diag 2>/dev/null
[ "$fail" -eq 0 ] || { dump sq.log; dump sq2.log; }
exit 0
