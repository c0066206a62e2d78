# density_smoke: `ebb bench density` end to end in the host-box, short
# (docs/density.md): the web mix, VMs of 192 MiB, a budget of 320 MiB,
# policies static and ebb, at most 2 VMs each, steps of 30 s (reports every
# 3 s), p99 SLO 4.0x (the box's p99 moved by 1.3-3.0x between identical
# steps: docs/density.md).  That is 5 guest boots: the web baseline, then up to 2 VMs per
# policy.  What it checks is that the tool works, not what density it
# finds (in a 1-CPU TCG box the VMs share one CPU, and the p99 SLO may break
# on CPU alone): it exits 0; both policies ran and are in the table and in
# summary.csv with a VM count that parses; the baseline has a p99 and a rate
# above 0; every row of steps.csv parses, names a known verdict and shows
# no data error; no guest printed an OOM kill unless the tool reported it
# (the verdict); the VMs and ebbd are gone afterwards.  Figures on '#' lines.
# box-timeout: 1800
# box-cost: 700 (seconds in a box beside a second one: 5 nested boots, 5 steps of 30 s; 207-215 s alone in a quiet box when every policy broke at 1 VM)

. /ebb/lib/scenario.sh   # check, now (docs/box.md)
out=$PWD/density-out
t0=$(now)
"$EBB" bench density --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --mem 192M \
	--budget 320M --mix web --policies static,ebb --max-vms 2 --step 30 --report 3 \
	--warm 10 --slo-p99 4.0 --boot-timeout 600 --ebbd-arg=--no-ksm --out "$out" \
	>table.txt 2>progress.txt
rc=$?
echo "# ebb bench density took $(awk "BEGIN { print int($(now) - $t0) }") s, exit $rc"
sed 's/^/# progress| /' progress.txt | tail -n 40
sed 's/^/# table| /' table.txt
[ "$rc" = 0 ]
check $? "ebb bench density exits 0 ($rc)"

# a row of the policy table: name, VMs held, then "N (why..." or "- (held..."
# (the memory table below it also starts with the name and a number)
rows() { grep -cE "^$1 +[0-9]+ +([0-9]+ \(|- \(held)" table.txt; }
[ "$(rows static)" = 1 ] && [ "$(rows ebb)" = 1 ]
check $? "the table has one row for static and one for ebb"

# summary.csv: header + one row per policy, held a number 0..2
ok=1
for p in static ebb; do
	held=$(awk -F, -v p="$p" 'NR > 1 && $1 == p { print $2 }' "$out/summary.csv")
	echo "# summary: $p held ${held:-?} VMs"
	case $held in [0-2]) ;; *) ok=0 ;; esac
done
[ "$ok" = 1 ] && [ "$(wc -l <"$out/summary.csv")" = 3 ]
check $? "summary.csv has both policies with a VM count of 0-2"

# baseline.csv: web with a p99 and a rate that parse, the rate above 0
awk -F, 'NR == 2 && $1 == "web" && $4 ~ /^[0-9]+$/ && $5 ~ /^[0-9.]+$/ && $5 > 0 { ok = 1 }
	END { exit !ok }' "$out/baseline.csv"
check $? "baseline.csv: web's p99 and rate ($(sed -n 2p "$out/baseline.csv"))"

# steps.csv: every row's numbers parse, its verdict is known, no data error
n=$(awk -F, 'NR > 1' "$out/steps.csv" | wc -l)
bad=$(awk -F, 'NR > 1 && !($2 ~ /^[0-9]+$/ && $7 ~ /^[0-9]+$/ && $10 ~ /^[0-9.]+$/ && $13 == 0 &&
	$15 ~ /^(ok|p99|throughput|oom-kill|data-errors|no-reports|vm-died|over-budget|not-warm)$/)' \
	"$out/steps.csv" | wc -l)
sed 's/^/# steps.csv| /' "$out/steps.csv"
[ "$n" -ge 1 ] && [ "$bad" = 0 ]
check $? "steps.csv: $n rows, each parses with no data error ($bad bad)"

# every OOM line a guest printed must have ended its policy with oom-kill
oom=$(cat "$out"/logs/*.console 2>/dev/null | grep -ci 'out of memory\|oom-kill\|killed process')
told=$(grep -c ',oom-kill,' "$out/steps.csv")
[ "$oom" = 0 ] || [ "$told" -gt 0 ]
check $? "guest OOM lines ($oom) are reported by the tool ($told oom-kill verdicts)"

[ -s "$out/memory.csv" ] && [ -s "$out/density.gp" ]
check $? "memory.csv ($(($(wc -l <"$out/memory.csv") - 1)) samples) and the gnuplot script written"

left=$(ps -o args 2>/dev/null | grep -c '[e]bb run\|[e]bbd --policy')
[ "$left" = 0 ]
check $? "no VM or ebbd left running ($left)"
[ "$fail" = 0 ] || for f in "$out"/logs/*.console; do tail -n 15 "$f" | sed "s/^/# $(basename "$f"): /"; done
exit 0
