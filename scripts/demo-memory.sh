# scripts/demo-memory.sh: the memory part of `make demo`, under ebbd.  Run inside the
# host-box after scripts/demo-ebb.sh (a scenario for tests/box/run; contract
# in docs/box.md; docs/memory.md, docs/ebbd.md).  Three ebb VMs overcommitted
# on a pool of half their RAM, managed by ebbd: nobody types `ebb set`.  Each
# runs tests/progs/pattern (a hot set over known data); batch1 finishes
# early and goes idle, db1 then grows; ebbd moves the memory (balloons sized
# from the agents' reports, clamps of high/max held as leases).  A live
# table of the VMs, the pool, its watermarks and ebbd's last decisions; a
# summary; TAP lines for the results.
. /ebb/lib/scenario.sh   # start, wait_for, field, now (docs/box.md)
say() { echo "$*"; }
START_AGENT=1

BUDGET_MIB=352
say ""
say "== Overcommit under ebbd: three 256 MiB VMs on a $BUDGET_MIB MiB pool =="
say "Each VM's RAM is a reclaim region (userfaultfd pager, LZ4 + file swap store,"
say "KVM dirty log for aging).  ebbd (the host's kswapd for VMs) holds the pool:"
say "watermarks min/low/high below the budget, memory taken cheapest first"
say "(balloon from what the guest's agent says it does not need, then the VM's"
say "cold pages by lowering its high), every clamp a lease a dead ebbd cannot keep."
say "Workloads (tests/progs/pattern hot): web1 96 MiB with a 16 MiB hot set for"
say "150 s; batch1 the same for 40 s, then idle; db1 the same for 40 s, then"
say "144 MiB with a 120 MiB hot set for 100 s.  Then every byte is checked."
say "  \$ ebbd --budget ${BUDGET_MIB}M --vms-only &"
say "  \$ ebb run ... --mem 256M --name web1   (and db1, batch1; no --mem-max)"
mkdir -p rt && chmod 700 rt
"$EBB_BIN/ebbd" --budget "${BUDGET_MIB}M" --vms-only --lease-ms 10000 --no-ksm --log ebbd.log &
ebbd_pid=$!
mlaunch() { start "$1" "$1.log" "$2" --mem 256M --swap-dir "$PWD"; }
mfield() { field "$@"; }
mib() { awk "BEGIN { printf \"%.0f\", ${1:-0} * 4096 / 1048576 }"; }
peak_total=0
table() { # one line per VM plus the total and ebbd's view; tracks the peak total resident
	printf '  %-7s %9s %9s %11s %10s %8s %8s %8s\n' VM resident swapped "lz4/file" ballooned max refaults "psi10"
	tot=0
	for n in web1 db1 batch1; do
		"$EBB" stat "$n" --json >"$n.json" 2>/dev/null || continue
		r=$(mfield "$n.json" resident_pages)
		[ -n "$r" ] || continue
		tot=$((tot + r))
		printf '  %-7s %5s MiB %5s MiB %5s/%-5s %6s MiB %4s MiB %8s %7s%%\n' "$n" \
			"$(mib "$r")" "$(mib "$(mfield "$n.json" swapped_pages)")" \
			"$(mib "$(mfield "$n.json" compressed_pages)")" "$(mib "$(mfield "$n.json" file_pages)")" \
			"$(mib "$(mfield "$n.json" ballooned_pages)")" \
			"$(mib "$(mfield "$n.json" max_pages)")" "$(mfield "$n.json" nr_refaults)" \
			"$(sed -n 's/.*"pressure_some_avg10": *\([0-9.]*\).*/\1/p' "$n.json" | cut -c1-5)"
	done
	[ "$tot" -gt "$peak_total" ] && peak_total=$tot
	say "  total resident $(mib $tot) MiB of the $BUDGET_MIB MiB pool (3 x 256 MiB of guest RAM)"
	"$EBB" pool --trace 3 2>&1 | sed 's/^/  | /'
}
mlaunch web1 'pattern hot 96 16 150 10; sleep 900'
mlaunch db1 'pattern hot 96 16 40 10; pattern hot 144 120 100 10; sleep 900'
mlaunch batch1 'pattern hot 96 16 40 10; sleep 900'
wait_for web1.log 'pattern: hot t=' 900 && wait_for db1.log 'pattern: hot t=' 300 &&
	wait_for batch1.log 'pattern: hot t=' 300
r=$?
[ $r -eq 0 ] && echo "ok - three VMs (768 MiB of guest RAM) run their workloads on a $BUDGET_MIB MiB pool held by ebbd" ||
	echo "not ok - the three overcommitted VMs did not all start their workloads"
say ""
say "Live (ebb stat --json of each VM and ebb pool, every 10 s; nobody types ebb set):"
k=0
oom() { grep -l 'Killed process' web1.log db1.log batch1.log 2>/dev/null; }
# db1 done, or a guest OOM kill (then nothing more will come)
db1_done() { [ "$(grep -c 'pattern: hot done' db1.log)" -ge 2 ] || [ -n "$(oom)" ]; }
while [ $k -lt 30 ] && ! db1_done; do table; sleep 10; k=$((k + 1)); done
table
say ""
say "Summary:"
i=0
while ! db1_done && [ $i -lt 300 ]; do sleep 2; i=$((i + 1)); done
for n in web1 db1 batch1; do
	[ -n "$(oom)" ] || wait_for $n.log 'pattern: hot done' 600
	grep 'pattern: hot done' $n.log | while read -r l; do
		say "  $n: $(echo "$l" | cut -d' ' -f3- | sed 's/ sum=.*//') (MiB/s of hot-set reads+writes; pages that differed)"
	done
done
for n in web1 db1 batch1; do
	"$EBB" stat "$n" --json >"$n.json" 2>/dev/null
	say "  $n: swapped out $(mfield $n.json nr_swapped_out) pages, in $(mfield $n.json nr_swapped_in), clean drops $(mfield $n.json nr_clean_dropped), errors $(mfield $n.json nr_errors) (enospc $(mfield $n.json nr_enospc), short reads $(mfield $n.json nr_short_reads), write $(mfield $n.json nr_write_errors), read $(mfield $n.json nr_read_errors), checksum $(mfield $n.json nr_checksum_errors)), lost $(mfield $n.json lost_pages)"
done
for n in web1 db1 batch1; do
	[ -s $n.err ] || continue
	say "  $n: what ebb logged (stderr):"
	sort $n.err | uniq -c | sort -rn | head -n 5 | sed 's/^/    /'
done
say "  peak total resident seen: $(mib $peak_total) MiB (budget $BUDGET_MIB MiB; the first samples include the fill)"
silent= differ=
for n in web1 db1 batch1; do
	if ! grep -q 'pattern: hot done' $n.log; then
		silent="$silent $n"
	elif grep 'pattern: hot done' $n.log | grep -qv 'bad_pages=0 '; then
		differ="$differ $n"
	fi
done
if [ -z "$silent$differ" ]; then
	echo "ok - every byte the guests wrote came back intact"
else
	[ -n "$differ" ] && echo "# guests that found different data:$differ"
	for n in $silent; do
		echo "# $n never reported its check; the end of its console and stderr:"
		tail -n 20 $n.log | sed "s/^/# $n| /"
		tail -n 20 $n.err 2>/dev/null | sed "s/^/# $n stderr| /"
	done
	[ -n "$silent" ] && dmesg | grep -iE 'segfault|trap|killed process|out of memory|ebb' | tail -n 10 | sed 's/^/# box dmesg| /'
	echo "not ok - not every guest reported its data intact (different:${differ:- none}; no report:${silent:- none})"
fi
[ -z "$(oom)" ] && echo "ok - no OOM kill in any guest" ||
	echo "not ok - OOM kill in $(oom | tr '\n' ' ')($(grep -h 'Killed process' web1.log db1.log batch1.log | head -n 2))"
[ "$(mib $peak_total)" -le "$((BUDGET_MIB + 8))" ] &&
	echo "ok - the three VMs stayed within the $BUDGET_MIB MiB pool (peak $(mib $peak_total) MiB)" ||
	echo "not ok - resident RAM went over the pool (peak $(mib $peak_total) MiB)"
unixcat -t 10 -n 1 rt/ebbd.sock '{"cmd":"pool"}' >pool.json 2>/dev/null
say "  ebbd: $(field pool.json nr_actions) decisions, $(field pool.json nr_actions_applied) applied; reclaimed by balloon $(awk "BEGIN { printf \"%.0f\", $(field pool.json reclaimed_balloon_bytes) / 1048576 }") MiB, by high $(awk "BEGIN { printf \"%.0f\", $(field pool.json reclaimed_high_bytes) / 1048576 }") MiB"
[ "$(field pool.json nr_actions_applied)" -gt 0 ] 2>/dev/null &&
	echo "ok - memory moved by ebbd's decisions, without a hand-typed ebb set" ||
	echo "not ok - ebbd applied no decision"
kill -TERM "$ebbd_pid" 2>/dev/null; wait "$ebbd_pid"
for n in web1 db1 batch1; do "$EBB" stop "$n" >/dev/null 2>&1; done
say "  \$ ebb ls   (after ebb stop web1 db1 batch1)"
"$EBB" ls | sed 's/^/  /'
exit 0
