# The in-box half of bench/density_box.sh (a box scenario run by that script,
# not by make check-e2e): `ebb bench density` on the issue's two mixes, each
# under static, mom and ebb, VMs of 192 MiB on a budget of 384 MiB (static
# provisioning holds 2 of them), at most 5 VMs per policy, steps of 30 s
# with reports every 3 s, and an SLO on p99 of 4.0x the baseline, not the
# default 1.1x: in the box a single VM with nothing else to compete with,
# nothing reclaimed and the pool half empty measured 1.3x to 3.0x of its own
# baseline minutes later (the box's speed follows the host's load:
# docs/density.md), so 1.1x and 2.0x broke on noise at 1 VM and measured
# nothing about memory.  Throughput (>= 0.9x), OOM kills, data errors and
# the budget keep their bounds.
#   idle-heavy: idle=80,web=20      web: web
# Prints each run's table as '#' lines, "bench-figure: MIX_POLICY_held N"
# lines that bench/density_box.sh turns into ratios (docs/density.md), and
# every line of the run's CSVs, plot data and gnuplot script as
# "bench-file: MIX/NAME|LINE", from which it draws the plots on the host.
# box-timeout: 5400

. /ebb/lib/scenario.sh   # check, now (docs/box.md)
for mix in idle web; do
	case $mix in
	idle) spec=idle=80,web=20 ;;
	web) spec=web ;;
	esac
	t0=$(now)
	"$EBB" bench density --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --mem 192M \
		--budget 384M --mix "$spec" --policies static,mom,ebb --max-vms 5 --step 30 \
		--report 3 --warm 20 --slo-p99 4.0 --boot-timeout 600 --ebbd-arg=--no-ksm \
		--out "$PWD/out-$mix" \
		>"table-$mix.txt" 2>"progress-$mix.txt"
	rc=$?
	echo "# $mix mix ($spec): ebb bench density took $(awk "BEGIN { print int($(now) - $t0) }") s, exit $rc"
	sed "s/^/# $mix| /" "table-$mix.txt"
	sed "s/^/# $mix progress| /" "progress-$mix.txt" | tail -n 60
	sed "s/^/# $mix steps.csv| /" "out-$mix/steps.csv"
	[ "$rc" = 0 ]
	check $? "$mix mix: ebb bench density ran all three policies"
	for p in static mom ebb; do
		held=$(awk -F, -v p="$p" 'NR > 1 && $1 == p { print $2 }' "out-$mix/summary.csv")
		why=$(awk -F, -v p="$p" 'NR > 1 && $1 == p { print $3 " " $4 }' "out-$mix/summary.csv")
		echo "bench-figure: ${mix}_${p}_held ${held:-?} (broke at: ${why:-?})"
	done
	oom=$(awk -F, 'NR > 1 && $15 == "oom-kill"' "out-$mix/steps.csv" | wc -l)
	echo "bench-figure: ${mix}_oom_verdicts $oom"
	# The plot data and script go out on the console: gnuplot is not in the
	# box, bench/density_box.sh draws the PNGs on the host.
	for f in "out-$mix"/*.dat "out-$mix"/*.csv "out-$mix"/density.gp; do
		[ -f "$f" ] && sed "s#^#bench-file: $mix/${f##*/}|#" "$f"
	done
done
exit 0
