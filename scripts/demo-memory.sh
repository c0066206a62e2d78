# scripts/demo-memory.sh: the memory part of `make demo`, run inside the
# host-box after scripts/demo-ebb.sh (a scenario for tests/box/run; contract
# in docs/box.md; docs/memory.md).  Three ebb VMs overcommitted on a budget
# of half their RAM, each running tests/progs/pattern (a hot set over known
# data); live ebb stat figures while ebb squeezes and balloons one of them
# and gives its share to another; a summary; TAP lines for the results.
. /ebb/lib/scenario.sh   # start, wait_for, field, now (docs/box.md)
say() { echo "$*"; }

# ---- overcommit: three VMs on a budget smaller than their sum (docs/memory.md)
say ""
say "== Overcommit: three 192 MiB VMs on a 288 MiB budget =="
say "Each VM's RAM is a reclaim region (userfaultfd pager, LZ4 + file swap store,"
say "KVM dirty log for aging); --mem-max caps its resident RAM.  The budget"
say "(288 MiB, half of the 576 MiB the guests have) is split 96 + 96 + 96 MiB."
say "Workload in each (tests/progs/pattern hot): 96 MiB of known data, of which"
say "16 MiB are read and written in a loop for 120 s; then every byte is checked."
say "  \$ ebb run ... --mem 192M --mem-max 96M --name web1   (and db1, batch1)"
BUDGET_MIB=288
mlaunch() { start "$1" "$1.log" "$3" --mem 192M --mem-max "$2" --swap-dir "$PWD"; }
mfield() { field "$@"; }
mib() { awk "BEGIN { printf \"%.0f\", ${1:-0} * 4096 / 1048576 }"; }
peak_total=0
table() { # one line per VM plus the total; tracks the peak total resident
	printf '  %-7s %9s %9s %11s %8s %10s %8s %8s %8s\n' VM resident swapped "lz4/file" zero ballooned max refaults "psi10"
	tot=0
	for n in web1 db1 batch1; do
		"$EBB" stat "$n" --json >"$n.json" 2>/dev/null || continue
		r=$(mfield "$n.json" resident_pages)
		[ -n "$r" ] || continue
		tot=$((tot + r))
		printf '  %-7s %5s MiB %5s MiB %5s/%-5s %4s MiB %6s MiB %4s MiB %8s %7s%%\n' "$n" \
			"$(mib "$r")" "$(mib "$(mfield "$n.json" swapped_pages)")" \
			"$(mib "$(mfield "$n.json" compressed_pages)")" "$(mib "$(mfield "$n.json" file_pages)")" \
			"$(mib "$(mfield "$n.json" zero_pages)")" "$(mib "$(mfield "$n.json" ballooned_pages)")" \
			"$(mib "$(mfield "$n.json" max_pages)")" "$(mfield "$n.json" nr_refaults)" \
			"$(sed -n 's/.*"pressure_some_avg10": *\([0-9.]*\).*/\1/p' "$n.json" | cut -c1-5)"
	done
	[ "$tot" -gt "$peak_total" ] && peak_total=$tot
	say "  total resident $(mib $tot) MiB of the $BUDGET_MIB MiB budget (3 x 192 MiB of guest RAM)"
}
mlaunch web1 96M 'pattern hot 96 16 120 10; sleep 900'
mlaunch db1 96M 'pattern hot 96 16 120 10; sleep 900'
mlaunch batch1 96M 'pattern hot 96 16 120 10; sleep 900'
wait_for web1.log 'pattern: hot t=' 900 && wait_for db1.log 'pattern: hot t=' 300 &&
	wait_for batch1.log 'pattern: hot t=' 300
r=$?
[ $r -eq 0 ] && echo "ok - three VMs (576 MiB of guest RAM) run their workloads on a $BUDGET_MIB MiB budget" ||
	echo "not ok - the three overcommitted VMs did not all start their workloads"
say ""
say "Live (ebb stat --json of each VM, every 10 s):"
for k in 1 2 3; do table; sleep 10; done
say ""
say "Squeeze: batch1 is low priority.  Its balloon takes 25% of its RAM and"
say "its max drops to 48 MiB; once it is there, db1 gets the difference (144 MiB):"
say "  \$ ebb balloon batch1 75%; ebb set batch1 max=48M; ebb set db1 max=144M"
"$EBB" balloon batch1 75% >/dev/null 2>&1
"$EBB" set batch1 max=48M | sed 's/^/  /'
i=0
while [ $i -lt 60 ]; do
	"$EBB" stat batch1 --json >batch1.json 2>/dev/null
	[ "$(mfield batch1.json resident_pages)" -le 12288 ] 2>/dev/null && break
	i=$((i + 1)); sleep 1
done
"$EBB" set db1 max=144M | sed 's/^/  /'
for k in 1 2 3; do table; sleep 10; done
say ""
say "Summary:"
for n in web1 db1 batch1; do
	wait_for $n.log 'pattern: hot done' 600
	say "  $n: $(grep 'pattern: hot done' $n.log | cut -d' ' -f3- | sed 's/ sum=.*//') (MiB/s of hot-set reads+writes; pages that differed)"
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
	elif ! grep 'pattern: hot done' $n.log | grep -q 'bad_pages=0 '; then
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
[ "$(mib $peak_total)" -le "$((BUDGET_MIB + 8))" ] &&
	echo "ok - the three VMs stayed within the $BUDGET_MIB MiB budget (peak $(mib $peak_total) MiB)" ||
	echo "not ok - resident RAM went over the budget (peak $(mib $peak_total) MiB)"
for n in web1 db1 batch1; do "$EBB" stop "$n" >/dev/null 2>&1; done
say "  \$ ebb ls   (after ebb stop web1 db1 batch1)"
"$EBB" ls | sed 's/^/  /'
exit 0
